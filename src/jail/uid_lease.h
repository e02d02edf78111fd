// A user id for one sandbox's QEMU that no other running sandbox holds.
//
// When moat runs as root, each QEMU runs as a uid of its own (and the gid
// of the same number), with no entry in /etc/passwd: a guest that took over
// its QEMU owns no file on the host and shares an identity with no other
// process. The lease is a lock on a file named after the uid in a root-only
// directory; the shim holds it for its lifetime, so a uid comes free when
// the shim ends, however it ends (QEMU dies with the shim).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::jail {

// 0x6d6f0000 ("mo"): above the ids distributions hand out to users and
// to rootless containers' subordinate ranges by default, below 2^31.
inline constexpr std::uint32_t kJailUidFirst = 0x6d6f0000;
inline constexpr std::uint32_t kJailUidCount = 65536;
inline constexpr char kJailLockDir[] = "/run/moat/jail-uids";

class UidLease {
 public:
  // The lowest free uid of [first, first + count), leased by locking
  // `lock_dir`/<uid> (the directory is created, mode 0700).
  static Result<UidLease> acquire(const std::string& lock_dir = kJailLockDir, std::uint32_t first = kJailUidFirst,
                                  std::uint32_t count = kJailUidCount);

  uid_t uid() const { return uid_; }
  gid_t gid() const { return static_cast<gid_t>(uid_); }

 private:
  UniqueFd lock_;
  uid_t uid_ = 0;
};

}  // namespace moat::jail
