// The few libarchive calls the root's tar streams need: entries with
// attributes, xattrs and hard links, file contents read from an overlay
// entry in chunks, pax with names as bytes, written to a descriptor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "root_view/overlay_view.h"

struct archive;

namespace moat::root_view {

class TarWriter {
 public:
  static Result<TarWriter> to_fd(int fd);
  TarWriter(TarWriter&& other) noexcept;
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  TarWriter& operator=(TarWriter&&) = delete;
  ~TarWriter();

  // Writes `e` under `name` (relative, no leading "/"), its contents read
  // through `view`. A second name of a hard-linked inode becomes a link to
  // the first. Sockets are skipped.
  Status add(const OverlayView& view, const std::string& name, const RootEntry& e);
  // An empty regular file owned by root, mode 0644 or 0000 (OCI whiteouts).
  Status add_marker(const std::string& name, std::uint32_t mode);
  Status finish();

 private:
  explicit TarWriter(struct archive* a) : a_(a) {}
  Error archive_error(const std::string& what) const;

  struct archive* a_ = nullptr;
  // (upper?, inode) of hard-linked inodes already written, and their names.
  std::map<std::pair<bool, std::uint64_t>, std::string> links_;
};

}  // namespace moat::root_view
