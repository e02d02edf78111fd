// Payload schemas of the file-operation streams: one request opens a stream,
// the agent answers with data/entries and ends the stream with `result` or an
// `error` whose code is an errno name ("ENOENT"). Both sides use these, so
// the schema and its limits are in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/message.h"

namespace moat::proto {

// Stream-opening request types and the replies of file streams.
namespace msg {
inline constexpr std::string_view kStat = "stat";
inline constexpr std::string_view kList = "list";
inline constexpr std::string_view kRead = "read";
inline constexpr std::string_view kWrite = "write";
inline constexpr std::string_view kMkdir = "mkdir";
inline constexpr std::string_view kRemove = "remove";
inline constexpr std::string_view kRename = "rename";
inline constexpr std::string_view kChmod = "chmod";
inline constexpr std::string_view kChown = "chown";
inline constexpr std::string_view kTarOut = "tar_out";
inline constexpr std::string_view kTarIn = "tar_in";
// Replies and stream data.
inline constexpr std::string_view kData = "data";        // {"d": bytes} either way
inline constexpr std::string_view kEnd = "end";          // client: no more data
inline constexpr std::string_view kEntries = "entries";  // agent: a batch of a listing
inline constexpr std::string_view kResult = "result";    // agent, end-stream: success
}  // namespace msg

// True for the request types above (they open a stream, like `exec`).
bool is_file_request(std::string_view type);

// Limits; the agent rejects requests beyond them, the host rejects replies.
inline constexpr std::size_t kMaxFilePath = 4096;
inline constexpr std::size_t kMaxNameLength = 255;
inline constexpr std::size_t kMaxEntriesPerBatch = 256;
inline constexpr std::uint32_t kMaxUidGid = 0xfffffffe;  // (uid_t)-1 means "unchanged"
// Flow-control window of read/write/tar streams, granted in quarters. Larger
// than an exec's: a transfer is one bulk stream whose throughput is window
// over round-trip time, and the round trip through an emulated guest is long.
inline constexpr std::uint64_t kFileWindow = 1024 * 1024;

enum class FileType { kFile, kDir, kSymlink, kChar, kBlock, kFifo, kSocket };
std::string_view to_string(FileType t);
std::optional<FileType> file_type_from(std::string_view s);

struct FileStat {
  FileType type = FileType::kFile;
  std::uint32_t mode = 0;  // permission bits, 07777
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::uint64_t nlink = 1;
  std::int64_t mtime_ns = 0;
  std::string target;  // symlinks only
};
Json to_payload(const FileStat& s);
Result<FileStat> parse_file_stat(const Json& p);

struct DirEntry {
  std::string name;
  FileStat stat;
};
Json to_payload(const std::vector<DirEntry>& entries);  // {"entries": [...]}
Result<std::vector<DirEntry>> parse_entries(const Json& p);

// One request shape covers every operation; each uses the fields it needs.
struct FileRequest {
  std::string op;       // one of the request types
  std::string path;     // every op; rename: the source
  std::string to;       // rename: the destination
  std::string name;     // tar_out: top-level name in the archive (default: basename)
  std::uint32_t mode = 0;  // write/mkdir/chmod; 0 in write/mkdir: 0644 / 0755
  std::optional<std::uint32_t> uid;  // write/chown
  std::optional<std::uint32_t> gid;
  bool follow = false;     // stat/chown: follow a final symlink
  bool parents = false;    // mkdir -p
  bool recursive = false;  // remove
  bool append = false;     // write: append instead of truncate
  bool exclusive = false;  // write: fail if it exists
  std::uint64_t offset = 0;  // read
  std::uint64_t length = 0;  // read; 0: to the end
};
Json to_payload(const FileRequest& r);
Result<FileRequest> parse_file_request(std::string_view type, const Json& p);

// The `result` of write/tar_in/read/tar_out: bytes moved, tar entries.
struct FileResult {
  std::uint64_t bytes = 0;
  std::uint64_t entries = 0;
};
Json to_payload(const FileResult& r);
Result<FileResult> parse_file_result(const Json& p);

// The bytes of a `data` message body encoded exactly as encode_message
// writes it ({"p": {"d": bytes}, "t": "data", "v": 1}), found without a
// general CBOR parse: the agent's hot path when files stream in, where a
// byte-at-a-time parser costs seconds per 100 MiB under emulation. Any other
// body gives nullopt and takes the normal, fully checked path.
std::optional<std::string_view> data_fast_path(std::string_view body);

// errno <-> its name ("ENOENT"), for error codes that cross the wire.
std::string errno_name(int err);
int errno_from_name(std::string_view name);  // 0 if not an errno name

}  // namespace moat::proto
