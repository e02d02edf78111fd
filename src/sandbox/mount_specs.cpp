// The CLI forms of mounts (moat/sandbox.h): -v and --tmpfs, as `moat run`
// and the C ABI take them.
#include "moat/sandbox.h"

#include <cerrno>
#include <limits>
#include <vector>

namespace moat {
namespace {

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    auto at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

// A mount point in the guest is an absolute path without ".." components:
// "/data/../etc" would mount the volume over /etc, which nobody reading the
// flag expects. create checks the same (volumes.cpp); here the error names
// the flag as the user wrote it.
Status check_guest_mount_path(const std::string& flag, const std::string& text, const std::string& path) {
  if (path.empty() || path[0] != '/')
    return make_error(flag + " " + text + ": the guest path \"" + path + "\" must be absolute", EINVAL);
  for (const auto& name : split_on(path, '/')) {
    if (name == "..")
      return make_error(flag + " " + text + ": the guest path \"" + path + "\" must not contain \"..\"", EINVAL);
  }
  return ok_status();
}

}  // namespace

Result<std::uint64_t> parse_byte_size(std::string_view text) {
  const std::string given(text);  // `text` loses its unit below
  auto bad = [&] {
    return make_error("bad size \"" + given + "\": give bytes, or a number with k, m, g or t (64m)", EINVAL);
  };
  if (text.empty()) return bad();
  std::uint64_t shift = 0;
  switch (text.back()) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: break;
  }
  if (shift) text.remove_suffix(1);
  if (text.empty() || text.size() > 19) return bad();
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad();
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > (std::numeric_limits<std::uint64_t>::max() >> shift)) return bad();
  return v << shift;
}

// The size limit of a volume: "size=1g", at least 4k, at most 1024t.
Result<std::uint64_t> parse_volume_size(const std::string& flag, std::string_view value) {
  auto bytes = parse_byte_size(value);
  if (!bytes) return bytes.error().wrap(flag);
  if (*bytes < kMinVolumeSize || *bytes > kMaxVolumeSize)
    return make_error(flag + ": the size must be between 4k and 1024t", EINVAL);
  return *bytes;
}

Result<VolumeMount> parse_volume_mount(const std::string& text) {
  auto parts = split_on(text, ':');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
    return make_error("-v " + text + ": expected SOURCE:GUEST_PATH[:OPTIONS] (ro, rw, size=SIZE)", EINVAL);
  VolumeMount m;
  m.source = parts[0];
  m.guest_path = parts[1];
  MOAT_TRY(check_guest_mount_path("-v", text, m.guest_path));
  if (parts.size() < 3) return m;
  bool mode_given = false;
  for (const auto& option : split_on(parts[2], ',')) {
    if ((option == "ro" || option == "rw") && !mode_given) {
      m.read_only = option == "ro";
      mode_given = true;
    } else if (option.rfind("size=", 0) == 0 && m.size_bytes == 0) {
      MOAT_ASSIGN_OR_RETURN(m.size_bytes, parse_volume_size("-v " + text, std::string_view(option).substr(5)));
    } else {
      return make_error("-v " + text + ": unknown or repeated option \"" + option + "\" (use ro or rw, and size=SIZE)",
                        EINVAL);
    }
  }
  return m;
}

Result<TmpfsMount> parse_tmpfs_mount(const std::string& text) {
  auto colon = text.find(':');
  TmpfsMount t;
  t.guest_path = text.substr(0, colon);
  if (t.guest_path.empty()) return make_error("--tmpfs " + text + ": expected GUEST_PATH[:SIZE]", EINVAL);
  MOAT_TRY(check_guest_mount_path("--tmpfs", text, t.guest_path));
  if (colon != std::string::npos) {
    std::string_view size = std::string_view(text).substr(colon + 1);
    if (size.rfind("size=", 0) == 0) size.remove_prefix(5);
    auto bytes = parse_byte_size(size);
    if (!bytes) return bytes.error().wrap("--tmpfs " + text);
    if (*bytes == 0) return make_error("--tmpfs " + text + ": the size must be above 0", EINVAL);
    t.size_bytes = *bytes;
  }
  return t;
}

}  // namespace moat
