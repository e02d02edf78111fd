// The directory backend's inodes: FUSE node id -> an O_PATH descriptor of
// the host file, its (st_dev, st_ino) and the kernel's lookup count.
//
// The same host inode always maps to the same node id while the kernel
// remembers it, so hardlinks share a node, as the kernel expects. A node is
// dropped when its lookup count reaches zero (FORGET); node ids are never
// reused. The O_PATH descriptor pins the inode, so (st_dev, st_ino) cannot
// be recycled for another file while the node exists.
//
// Thread-safe. One mutex guards the maps only; callers get a shared
// reference to the node and do their I/O without holding it.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "util/unique_fd.h"

namespace moat::fs {

struct DirNode {
  UniqueFd fd;        // O_PATH | O_NOFOLLOW: never followed if a symlink
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t type = 0;    // S_IFMT of the host file (an inode's type never changes)
};
using DirNodeRef = std::shared_ptr<const DirNode>;

class NodeTable {
 public:
  // Most nodes kept at once by default; beyond the table's limit lookups
  // fail with ENFILE (each node holds a descriptor, so the limit keeps a
  // guest from using up the serving process's descriptors).
  static constexpr std::size_t kMaxNodes = 1u << 20;

  // `root` becomes FUSE_ROOT_ID, which is never forgotten. `max_nodes`
  // (at least 1: the root) bounds the nodes held at once.
  NodeTable(UniqueFd root, const struct stat& st, std::size_t max_nodes = kMaxNodes);

  // Null if the kernel sent an id this table does not hold.
  DirNodeRef get(std::uint64_t nodeid) const;

  // Counts one lookup of the inode `st` describes, adding it with `fd` if it
  // is new (otherwise `fd` is closed). Returns its node id, or 0 if full.
  std::uint64_t add(UniqueFd fd, const struct stat& st);

  // Drops `count` lookups; at zero the node goes.
  void forget(std::uint64_t nodeid, std::uint64_t count);

  std::size_t size() const;

 private:
  struct Entry {
    DirNodeRef node;
    std::uint64_t refs = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> by_id_;
  std::map<std::pair<dev_t, ino_t>, std::uint64_t> by_inode_;
  std::uint64_t next_id_ = 2;  // 1 is the root
  std::size_t max_nodes_;
};

}  // namespace moat::fs
