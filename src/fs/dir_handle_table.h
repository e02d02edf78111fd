// The open files and directories of the directory backend (dir_backend.h):
// each FUSE file handle (fh) names one host descriptor opened for I/O.
//
// Contracts:
// - A handle belongs to the node it was opened on: get() and remove() with
//   another node id find nothing, so a guest cannot use a handle number it
//   guessed on a file it did not open.
// - At most `max` handles are open at once (capped at kMaxDirHandles): past
//   it add() fails and the guest gets ENFILE, not the server's last
//   descriptors.
// - Handle numbers start at 1 and are never reused while the table lives;
//   0 is never a handle.
// - A handle taken with get() stays usable (its descriptor open) until the
//   caller drops the reference, even if the guest releases it meanwhile.
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "util/unique_fd.h"

namespace moat::fs {

// The most handles any table holds, whatever it is asked for.
inline constexpr std::size_t kMaxDirHandles = 1u << 20;

// An open file or directory handle.
struct DirHandle {
  UniqueFd fd;
  std::uint64_t nodeid = 0;
  std::mutex mu;  // directory streams: one READDIR at a time moves the offset
};
using DirHandleRef = std::shared_ptr<DirHandle>;

class DirHandleTable {
 public:
  explicit DirHandleTable(std::size_t max);

  // Takes `fd` as a new handle of `nodeid`; 0 (and `fd` closed) when the
  // table is full.
  std::uint64_t add(UniqueFd fd, std::uint64_t nodeid);
  // Null unless `fh` is open and belongs to `nodeid`.
  DirHandleRef get(std::uint64_t fh, std::uint64_t nodeid) const;
  // Whether `fh` was a handle of `nodeid` (and is closed now, or once the
  // last reference from get() goes).
  bool remove(std::uint64_t fh, std::uint64_t nodeid);
  // Handles open now.
  std::size_t size() const;

 private:
  std::size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, DirHandleRef> map_;
  std::uint64_t next_ = 1;
};

}  // namespace moat::fs
