#include "fs/node_table.h"

#include <linux/fuse.h>

namespace moat::fs {

NodeTable::NodeTable(UniqueFd root, const struct stat& st, std::size_t max_nodes)
    : max_nodes_(max_nodes < 1 ? 1 : max_nodes) {
  auto node = std::make_shared<DirNode>();
  node->fd = std::move(root);
  node->dev = st.st_dev;
  node->ino = st.st_ino;
  node->type = st.st_mode & S_IFMT;
  by_inode_[{st.st_dev, st.st_ino}] = FUSE_ROOT_ID;
  by_id_[FUSE_ROOT_ID] = Entry{std::move(node), 1};
}

DirNodeRef NodeTable::get(std::uint64_t nodeid) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return nullptr;
  return it->second.node;
}

std::uint64_t NodeTable::add(UniqueFd fd, const struct stat& st) {
  std::lock_guard lock(mu_);
  auto key = std::make_pair(st.st_dev, st.st_ino);
  if (auto it = by_inode_.find(key); it != by_inode_.end()) {
    ++by_id_[it->second].refs;
    return it->second;  // `fd` closes: the existing node already pins the inode
  }
  if (by_id_.size() >= max_nodes_) return 0;
  auto node = std::make_shared<DirNode>();
  node->fd = std::move(fd);
  node->dev = st.st_dev;
  node->ino = st.st_ino;
  node->type = st.st_mode & S_IFMT;
  std::uint64_t id = next_id_++;
  by_inode_[key] = id;
  by_id_[id] = Entry{std::move(node), 1};
  return id;
}

void NodeTable::forget(std::uint64_t nodeid, std::uint64_t count) {
  if (nodeid == FUSE_ROOT_ID) return;
  DirNodeRef last;  // closed after the lock is released
  std::lock_guard lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return;
  if (it->second.refs > count) {
    it->second.refs -= count;
    return;
  }
  last = std::move(it->second.node);
  by_inode_.erase({last->dev, last->ino});
  by_id_.erase(it);
}

std::size_t NodeTable::size() const {
  std::lock_guard lock(mu_);
  return by_id_.size();
}

}  // namespace moat::fs
