// The root reader's `diff` answer, parsed as untrusted input: the reader
// runs over disks a guest wrote, so a line it writes may be anything. One
// JSON object a line, {"kind": "A"|"C"|"D", "path": <bytes as JSON>}; a
// line over kMaxChangeLine, more than kMaxChanges lines, or output that
// ends mid-line is an error, never a partial list.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "moat/root_changes.h"
#include "util/result.h"

namespace moat::sandbox {

// A path is at most a few thousand components of 255 bytes; a line longer
// than this is not one the reader writes.
inline constexpr std::size_t kMaxChangeLine = 4 << 20;
// Far more than a 4 TiB disk's worth of changed names a caller could use.
inline constexpr std::size_t kMaxChanges = 16 << 20;

class ChangeLines {
 public:
  // Takes the next bytes of the answer, in pieces of any size.
  Status feed(std::string_view bytes);
  // The changes, once the answer has ended.
  Result<std::vector<RootChange>> finish();

 private:
  Status line(std::string_view text);

  std::string partial_;
  std::vector<RootChange> changes_;
};

}  // namespace moat::sandbox
