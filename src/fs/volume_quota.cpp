#include "fs/volume_quota.h"

#include <ftw.h>

#include <cerrno>
#include <unordered_set>

namespace moat::fs {
namespace {

// nftw has no user argument: the walk's state, one walk at a time.
std::mutex g_walk_mu;
std::uint64_t g_walk_total = 0;
std::unordered_set<ino_t>* g_walk_linked = nullptr;

int add_entry(const char*, const struct stat* st, int type, struct FTW* ftw) {
  if (ftw->level == 0) return FTW_CONTINUE;  // the volume's root
  if (type == FTW_NS || type == FTW_DNR) return FTW_CONTINUE;  // unreadable: nothing to count
  // A further name of a file seen already is one more entry.
  bool seen = S_ISREG(st->st_mode) && st->st_nlink > 1 && !g_walk_linked->insert(st->st_ino).second;
  g_walk_total += seen ? VolumeQuota::kBlock : VolumeQuota::cost(*st);
  return FTW_CONTINUE;
}

}  // namespace

std::uint64_t VolumeQuota::file_cost(std::uint64_t size) {
  std::uint64_t rounded = size > UINT64_MAX - (kBlock - 1) ? UINT64_MAX / kBlock * kBlock
                                                           : (size + kBlock - 1) / kBlock * kBlock;
  return rounded < kBlock ? kBlock : rounded;
}

std::uint64_t VolumeQuota::cost(const struct stat& st) {
  return S_ISREG(st.st_mode) ? file_cost(static_cast<std::uint64_t>(st.st_size)) : kBlock;
}

Result<std::uint64_t> VolumeQuota::measure(const std::string& root) {
  std::lock_guard<std::mutex> lock(g_walk_mu);
  std::unordered_set<ino_t> linked;
  g_walk_total = 0;
  g_walk_linked = &linked;
  int r = ::nftw(root.c_str(), add_entry, 64, FTW_PHYS | FTW_MOUNT | FTW_ACTIONRETVAL);
  g_walk_linked = nullptr;
  if (r != 0) return errno_error("measure the usage of " + root);
  return g_walk_total;
}

void VolumeQuota::adjust(std::uint64_t before, std::uint64_t after) {
  if (after >= before) {
    usage_ += after - before;
  } else {
    std::uint64_t less = before - after;
    // The host may have removed what was counted: never below zero.
    usage_ = usage_ > less ? usage_ - less : 0;
  }
}

bool VolumeQuota::closed(const struct stat& st) {
  auto it = open_.find(key(st));
  if (it == open_.end()) return false;
  if (--it->second > 0) return false;
  open_.erase(it);
  return orphans_.erase(key(st)) > 0;
}

void VolumeQuota::last_link_removed(const struct stat& st) {
  if (open_.count(key(st))) {
    orphans_.insert(key(st));
  } else {
    release(cost(st));
  }
}

bool VolumeQuota::may_reopen(const struct stat& st) const {
  return st.st_nlink > 0 || orphans_.count(key(st)) > 0;
}

}  // namespace moat::fs
