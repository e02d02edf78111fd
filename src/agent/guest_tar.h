// The guest's tar: a pull-style writer (the agent streams a directory tree
// out within the host's flow-control window) and a push-style reader (the
// agent extracts a tar stream as its chunks arrive). The agent is static and
// small, so this is a minimal ustar + pax implementation rather than a
// library: regular files, directories, symlinks, hardlinks, fifos; long
// names and link names, large sizes and ids through pax records.
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tree/tree_writer.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::agent {

inline constexpr std::size_t kTarBlock = 512;
// pax extended headers and GNU long names larger than this are rejected.
inline constexpr std::size_t kMaxTarMetaSize = 64 * 1024;

// Writes `path` (a file, a symlink itself, or a directory tree, never
// following symlinks below it) as a tar whose top-level entry is `top_name`.
class GuestTarWriter {
 public:
  static Result<std::unique_ptr<GuestTarWriter>> open(const std::string& path, const std::string& top_name);

  // Writes up to `max` bytes of the archive to `out`; returns how many, 0
  // once the archive is complete.
  Result<std::size_t> read(char* out, std::size_t max);

  std::uint64_t entries() const { return entries_; }

  ~GuestTarWriter();
  GuestTarWriter(const GuestTarWriter&) = delete;
  GuestTarWriter& operator=(const GuestTarWriter&) = delete;

 private:
  struct Dir {
    DIR* dir = nullptr;
    std::string name;  // archive name of the directory
  };
  GuestTarWriter() = default;
  // Emits the header of the entry `name` in `parent` (a directory fd) into pending_.
  Status add_entry(int parent, const std::string& leaf, const std::string& name);
  Status next_entry();

  std::vector<Dir> stack_;
  std::string pending_;  // header bytes (and padding) not yet handed out
  std::size_t pending_pos_ = 0;
  UniqueFd file_;
  std::uint64_t file_remaining_ = 0;
  std::size_t file_padding_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::uint64_t entries_ = 0;
  bool trailer_written_ = false;
  bool done_ = false;
};

// Encodes one tar header (with a preceding pax header when needed) into out.
struct TarHeader {
  std::string name;
  char typeflag = '0';
  std::string linkname;
  std::uint32_t mode = 0644;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
};
void encode_tar_header(const TarHeader& h, std::string& out);

// Extracts a tar stream fed in arbitrary chunks through a TreeWriter.
class GuestTarReader {
 public:
  explicit GuestTarReader(TreeWriter& writer) : writer_(writer) {}

  Status feed(std::string_view data);
  // The stream ended: checks it ended between entries, applies directory metadata.
  Status finish();

 private:
  enum class State { kHeader, kData, kMeta, kSkip, kPadding, kEnd };
  Status on_header();
  Status on_meta_complete();
  Status start_entry(const TarHeader& h);

  TreeWriter& writer_;
  State state_ = State::kHeader;
  std::string block_;
  std::uint64_t remaining_ = 0;  // data bytes of the current entry
  std::size_t padding_ = 0;
  char meta_type_ = 0;  // 'x', 'g', 'L' or 'K' while collecting meta_
  std::string meta_;
  std::optional<std::string> pax_path_, pax_link_;
  std::optional<std::uint64_t> pax_size_, pax_uid_, pax_gid_;
  std::optional<std::int64_t> pax_mtime_;
  int zero_blocks_ = 0;
};

}  // namespace moat::agent
