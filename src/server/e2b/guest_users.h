// The accounts of a guest, from its /etc/passwd and /etc/group, for what
// envd does by user: a command's user and working directory, the owner of
// an uploaded file, paths relative to the user's home, and names in
// EntryInfo. The files come from the guest: lines and counts are bounded,
// malformed lines skipped.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace moat::server::e2b {

struct GuestUser {
  std::string name;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string home;
};

class GuestUsers {
 public:
  static constexpr std::size_t kMaxEntries = 65536;

  static GuestUsers parse(std::string_view passwd, std::string_view group);

  std::optional<GuestUser> by_name(const std::string& name) const;
  // The name of a uid / gid, else the number as text.
  std::string user_name(std::uint32_t uid) const;
  std::string group_name(std::uint32_t gid) const;

 private:
  std::map<std::string, GuestUser> users_;
  std::map<std::uint32_t, std::string> uid_names_;
  std::map<std::uint32_t, std::string> gid_names_;
};

// `path` made absolute: a relative one is under `home` ("" and "~" are home
// itself, "~/x" is home/x).
std::string resolve_guest_path(const std::string& path, const std::string& home);

}  // namespace moat::server::e2b
