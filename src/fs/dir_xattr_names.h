// How the directory backend (dir_backend.h) maps the guest's extended
// attribute names onto the host file's.
//
// Contracts:
// - `user.*` names pass through unchanged.
// - `trusted.*` and `security.*` are kept as `user.moat.x.<name>`: the
//   server's user cannot set them on the host, and the guest's must not
//   mean anything to the host.
// - `user.moat.*` is the server's own (kPrivateXattrPrefix, stat_xattr.h):
//   invisible to the guest. Callers answer ENODATA to read it, EPERM to set
//   or remove it.
// - Every other namespace (system.*, ...) is unsupported: EOPNOTSUPP.
// - Listing shows exactly the names a guest can read back: pass-through
//   names as they are, mapped names without their prefix, nothing else.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moat::fs {

enum class XattrClass { kPassThrough, kMapped, kPrivate, kUnsupported };

struct HostXattrName {
  XattrClass kind = XattrClass::kUnsupported;
  std::string name;  // the host name; empty for kPrivate and kUnsupported
};

// The class of a guest name, and its host name where it has one.
HostXattrName host_xattr_name(std::string_view guest_name);

// For LISTXATTR: the guest's name for the host xattr `host_name`, or
// nullopt if the guest does not see it.
std::optional<std::string_view> guest_xattr_name(std::string_view host_name);

}  // namespace moat::fs
