#include "fs/dir_handle_table.h"

#include <algorithm>
#include <utility>

namespace moat::fs {

DirHandleTable::DirHandleTable(std::size_t max) : max_(std::min(max, kMaxDirHandles)) {}

std::uint64_t DirHandleTable::add(UniqueFd fd, std::uint64_t nodeid) {
  auto h = std::make_shared<DirHandle>();
  h->fd = std::move(fd);
  h->nodeid = nodeid;
  std::lock_guard lock(mu_);
  if (map_.size() >= max_) return 0;
  std::uint64_t id = next_++;
  map_[id] = std::move(h);
  return id;
}

DirHandleRef DirHandleTable::get(std::uint64_t fh, std::uint64_t nodeid) const {
  std::lock_guard lock(mu_);
  auto it = map_.find(fh);
  if (it == map_.end() || it->second->nodeid != nodeid) return nullptr;
  return it->second;
}

bool DirHandleTable::remove(std::uint64_t fh, std::uint64_t nodeid) {
  DirHandleRef last;  // declared first: closed after the lock is released
  std::lock_guard lock(mu_);
  auto it = map_.find(fh);
  if (it == map_.end() || it->second->nodeid != nodeid) return false;
  last = std::move(it->second);
  map_.erase(it);
  return true;
}

std::size_t DirHandleTable::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

}  // namespace moat::fs
