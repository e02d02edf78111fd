// Command-line text of the pre-boot patch options (see upper_patch.h).
#include <cerrno>
#include <charconv>

#include "store/guest_path.h"
#include "store/upper_patch.h"

namespace moat::store {
namespace {

const char* option_name(UpperPatch::Kind kind) {
  switch (kind) {
    case UpperPatch::Kind::kCopy: return "--copy";
    case UpperPatch::Kind::kMkdir: return "--mkdir";
    case UpperPatch::Kind::kWrite: return "--write";
    case UpperPatch::Kind::kRemove: return "--delete";
  }
  return "patch";
}

// The clean form of `raw`, keeping one trailing "/" if the user wrote one.
Result<std::string> clean_guest_path(std::string_view raw) {
  MOAT_ASSIGN_OR_RETURN(std::vector<std::string> names, split_guest_path(raw));
  std::string clean = join_guest_path(names);
  if (!names.empty() && raw.back() == '/') clean.push_back('/');
  return clean;
}

Result<std::uint32_t> parse_id(std::string_view text, const char* what) {
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 10);
  // (uid_t)-1 means "unchanged" to chown(2) and is never a real owner.
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v == 0xffffffffu) {
    return make_error(std::string("--chown: ") + what + " '" + std::string(text.substr(0, 40)) +
                          "' is not a number from 0 to 4294967294 (names are not resolved)",
                      EINVAL);
  }
  return v;
}

}  // namespace
}  // namespace moat::store

// The public parsers (include/moat/sandbox.h): one grammar for the CLI, SDKs
// and tests.
namespace moat {

using store::UpperPatch;

Result<RootPatch> parse_root_patch(RootPatch::Kind kind, std::string_view cli_text) {
  UpperPatch p;
  p.kind = kind;
  std::string_view guest = cli_text;
  const std::string opt = store::option_name(kind);
  if (kind == UpperPatch::Kind::kCopy) {
    std::size_t split = cli_text.rfind(":/");
    if (split == std::string_view::npos || split == 0) {
      return make_error(opt + " wants HOST:GUEST with an absolute GUEST path", EINVAL);
    }
    p.host_path = std::string(cli_text.substr(0, split));
    guest = cli_text.substr(split + 1);
    if (p.host_path.find('\0') != std::string::npos) return make_error(opt + ": host path contains NUL", EINVAL);
  } else if (kind == UpperPatch::Kind::kWrite) {
    std::size_t eq = cli_text.find('=');
    if (eq == std::string_view::npos) return make_error(opt + " wants GUEST=TEXT", EINVAL);
    guest = cli_text.substr(0, eq);
    std::string_view text = cli_text.substr(eq + 1);
    if (text.size() > store::kMaxPatchText) {
      return make_error(opt + ": TEXT is longer than 1 MiB (use --copy for files)", E2BIG);
    }
    p.text = std::string(text);
  }
  auto clean = store::clean_guest_path(guest);
  if (!clean) return clean.error().wrap(opt);
  p.guest_path = std::move(*clean);
  if (p.guest_path == "/" && kind != UpperPatch::Kind::kCopy) {
    return make_error(opt + ": cannot apply to the root directory '/'", EINVAL);
  }
  if (kind == UpperPatch::Kind::kWrite && p.guest_path.back() == '/') {
    return make_error(opt + ": guest path '" + p.guest_path + "' names a directory", EISDIR);
  }
  return p;
}

Result<PatchDefaults> parse_patch_owner(std::string_view text) {
  PatchDefaults d;
  std::size_t colon = text.find(':');
  MOAT_ASSIGN_OR_RETURN(std::uint32_t uid, store::parse_id(text.substr(0, colon), "UID"));
  std::uint32_t gid = uid;
  if (colon != std::string_view::npos) {
    MOAT_ASSIGN_OR_RETURN(gid, store::parse_id(text.substr(colon + 1), "GID"));
  }
  d.uid = uid;
  d.gid = gid;
  return d;
}

Result<std::uint32_t> parse_patch_mode(std::string_view text) {
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
  if (text.empty() || text.size() > 6 || ec != std::errc() || end != text.data() + text.size() || v > 07777) {
    return make_error("--chmod: '" + std::string(text.substr(0, 40)) + "' is not an octal mode from 0 to 7777",
                      EINVAL);
  }
  return v;
}

void apply_patch_defaults(std::vector<UpperPatch>& patches, const PatchDefaults& defaults) {
  for (auto& p : patches) {
    if (!p.mode) p.mode = defaults.mode;
    if (!p.uid) p.uid = defaults.uid;
    if (!p.gid) p.gid = defaults.gid;
  }
}

}  // namespace moat
