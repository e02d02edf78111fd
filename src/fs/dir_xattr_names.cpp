#include "fs/dir_xattr_names.h"

#include "fs/stat_xattr.h"

namespace moat::fs {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

XattrClass classify(std::string_view name) {
  if (starts_with(name, kPrivateXattrPrefix)) return XattrClass::kPrivate;
  if (starts_with(name, "user.")) return XattrClass::kPassThrough;
  if (starts_with(name, "trusted.") || starts_with(name, "security.")) return XattrClass::kMapped;
  return XattrClass::kUnsupported;
}

}  // namespace

HostXattrName host_xattr_name(std::string_view guest_name) {
  HostXattrName out;
  out.kind = classify(guest_name);
  if (out.kind == XattrClass::kPassThrough) out.name = std::string(guest_name);
  if (out.kind == XattrClass::kMapped) out.name = std::string(kMappedXattrPrefix) + std::string(guest_name);
  return out;
}

std::optional<std::string_view> guest_xattr_name(std::string_view host_name) {
  if (starts_with(host_name, kMappedXattrPrefix)) {
    host_name.remove_prefix(kMappedXattrPrefix.size());
    if (classify(host_name) != XattrClass::kMapped) return std::nullopt;
    return host_name;
  }
  // The server's own, and the host's trusted./security./system. names.
  if (classify(host_name) != XattrClass::kPassThrough) return std::nullopt;
  return host_name;
}

}  // namespace moat::fs
