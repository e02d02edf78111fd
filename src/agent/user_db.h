// Resolves the user an exec asks for against the guest root's /etc/passwd
// and /etc/group. Read directly: a static binary cannot use glibc's NSS.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "util/result.h"

namespace moat::agent {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  std::string home = "/";
  std::string name;           // empty when the uid has no passwd entry
};

// `spec` is "", "name", "uid", "name:group", "uid:gid" (any mix of names and
// numbers). A numeric uid without a passwd entry is allowed, as in Docker.
Result<Credentials> resolve_user(const std::string& spec, const std::string& passwd_path = "/etc/passwd",
                                 const std::string& group_path = "/etc/group");

}  // namespace moat::agent
