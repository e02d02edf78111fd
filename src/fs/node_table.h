// The directory backend's inodes: FUSE node id -> the host file (its
// identity and where it was last found), the kernel's lookup count, and an
// O_PATH descriptor while the node is open.
//
// The same host inode maps to the same node id while the kernel remembers
// it, so hardlinks share a node, as the kernel expects. A node is dropped
// when its lookup count reaches zero (FORGET) and no other node records it
// as its parent; node ids are never reused.
//
// Descriptors are a budget (`max_open`), nodes are not: a guest's kernel may
// remember far more inodes than the server can hold descriptors. Past the
// budget the least recently used node that is neither in a request's hands
// nor behind an open file or directory handle gives up its descriptor, and
// is reopened on its next use:
// - by the file handle name_to_handle_at gave for it (open_by_handle_at,
//   which needs CAP_DAC_READ_SEARCH), then checked to be the same inode and
//   still beneath the root: a directory by walking ".." up to the root, any
//   other file by finding it under its recorded name in its (open) parent
//   or at its current /proc path walked from the root without following
//   anything. A handle never leaves this process's memory, and only handles
//   made here for files found beneath the root are ever opened.
// - otherwise (no privilege, no handle support, or the handle's file is no
//   longer beneath the root) by opening its recorded name in its parent,
//   which is reopened the same way, with O_NOFOLLOW; the file found must be
//   the same inode (device, inode number, type, birth time and file handle,
//   as far as the host filesystem reports them), else ESTALE.
// A node whose file was deleted, or replaced by another under its name,
// answers ESTALE rather than showing the other file.
//
// Thread-safe. One mutex guards the maps; callers get a shared reference to
// an open node and do their I/O without holding it. Reopens run under the
// mutex: they only follow an eviction, and serializing them keeps one
// descriptor per node and a consistent chain of parents to walk.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "util/unique_fd.h"

namespace moat::fs {

// An open node, as handed to callers: the descriptor stays open while any
// reference to it lives, even if the table evicts the node meanwhile.
struct DirNode {
  UniqueFd fd;        // O_PATH | O_NOFOLLOW: never followed if a symlink
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t type = 0;    // S_IFMT of the host file (an inode's type never changes)
};
using DirNodeRef = std::shared_ptr<const DirNode>;

struct NodeTableOptions {
  // Nodes holding a descriptor at once, the root included (at least 1).
  std::size_t max_open = 1u << 20;
  // Nodes known at once (memory); lookups past it fail with ENFILE.
  std::size_t max_nodes = 1u << 20;
  // Reopen by file handle where the host allows it. Off, nodes are only
  // reopened by name, as a server without CAP_DAC_READ_SEARCH does.
  bool file_handles = true;
};

class NodeTable {
 public:
  static constexpr std::size_t kMaxNodes = 1u << 20;

  // `root` (an O_PATH descriptor of a directory) becomes FUSE_ROOT_ID, which
  // is never forgotten nor closed.
  NodeTable(UniqueFd root, const struct stat& st, NodeTableOptions options = {});

  // The node with an open descriptor, reopened if it had been closed; null
  // with `err` set otherwise: ESTALE for an id this table does not hold or
  // whose file is gone, ENFILE if every descriptor of the budget is in use.
  DirNodeRef get(std::uint64_t nodeid, int& err);

  // Whether the table holds `nodeid` (without opening it).
  bool contains(std::uint64_t nodeid) const;

  // Counts one lookup of the file `fd` (O_PATH; `st` its stat) found as
  // `name` in the directory node `parent`, adding a node if it is new
  // (otherwise `fd` is closed, or kept if the node had given up its own).
  // Returns the node id, or 0 with `err` set (ENFILE: too many nodes).
  std::uint64_t add(std::uint64_t parent, std::string_view name, UniqueFd fd, const struct stat& st, int& err);

  // After a rename: the file `fd` is now `name` in `parent`. Only updates
  // where a reopen by name looks.
  void moved(std::uint64_t parent, std::string_view name, UniqueFd fd);

  // Drops `count` lookups; at zero the node goes (once no child records it).
  void forget(std::uint64_t nodeid, std::uint64_t count);

  // An open file or directory handle of `nodeid` keeps its descriptor open
  // until the matching unpin.
  void pin(std::uint64_t nodeid);
  void unpin(std::uint64_t nodeid);

  std::size_t size() const;        // nodes known
  std::size_t open_count() const;  // nodes holding a descriptor

 private:
  struct Identity {
    dev_t dev = 0;
    ino_t ino = 0;
    mode_t type = 0;
    bool has_btime = false;
    std::int64_t btime_sec = 0;
    std::uint32_t btime_nsec = 0;
    bool handle_openable = false;  // made on the root's mount: open_by_handle_at may open it
    std::string handle;            // handle_type (4 bytes) + f_handle, or empty
  };
  struct Entry {
    DirNodeRef open;              // null while the descriptor is given up
    Identity id;
    std::uint64_t lookups = 0;    // the kernel's count
    std::uint64_t children = 0;   // entries recording this one as their parent
    std::uint64_t pins = 0;       // open handles
    std::uint64_t parent = 0;     // where it was last found; 0: nowhere known
    std::string name;
    bool stale = false;           // its file is gone for good
    bool in_lru = false;          // open, unpinned and not the root
    std::list<std::uint64_t>::iterator lru;
  };
  using Closed = std::vector<DirNodeRef>;  // released after the mutex

  // The host's identity of `fd`; false if it cannot be read.
  bool identify(int fd, Identity& out) const;
  static bool same_file(const Identity& known, const Identity& now);

  DirNodeRef open_locked(std::uint64_t nodeid, int depth, Closed& closed, int& err);
  int reopen_locked(Entry& e, int depth, Closed& closed, UniqueFd& fd);
  bool beneath_root_locked(int fd, const Entry& e, int depth, Closed& closed);
  bool dir_beneath_root(int fd) const;
  bool found_from_root(int fd, const Identity& id) const;
  void install_locked(std::uint64_t nodeid, Entry& e, UniqueFd fd);
  bool make_room_locked(Closed& closed);
  void touch_locked(Entry& e);
  void set_place_locked(std::uint64_t nodeid, Entry& e, std::uint64_t parent, std::string_view name,
                        Closed& closed);
  bool is_ancestor_locked(std::uint64_t nodeid, std::uint64_t start) const;
  void release_child_locked(std::uint64_t parent, Closed& closed);
  void erase_locked(std::uint64_t nodeid, Closed& closed);
  void mark_stale_locked(std::uint64_t nodeid, Entry& e);

  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> by_id_;
  std::map<std::pair<dev_t, ino_t>, std::uint64_t> by_inode_;
  std::list<std::uint64_t> lru_;  // front: most recently used
  std::uint64_t next_id_ = 2;     // 1 is the root
  std::size_t open_ = 0;
  NodeTableOptions options_;
  int root_fd_ = -1;              // the root entry's descriptor (never closed)
  dev_t root_dev_ = 0;
  ino_t root_ino_ = 0;
  int root_mount_id_ = -1;
  UniqueFd mount_fd_;             // open_by_handle_at needs a descriptor that is not O_PATH
  std::atomic<bool> handles_usable_{false};  // read unlocked by identify()
};

}  // namespace moat::fs
