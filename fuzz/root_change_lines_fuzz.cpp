// The root reader's diff answer as libmoat reads it (src/sandbox/
// change_lines.h): the reader runs over disks a guest wrote, so its output
// is untrusted. Any bytes either fail with EIO or give changes whose paths
// are absolute; and the answer read in pieces of any size (the first byte
// picks it) gives exactly what it gives read whole.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sandbox/change_lines.h"

namespace {

moat::Result<std::vector<moat::RootChange>> read_in_pieces(std::string_view text, std::size_t piece) {
  moat::sandbox::ChangeLines lines;
  for (std::size_t at = 0; at < text.size(); at += piece) {
    if (auto st = lines.feed(text.substr(at, piece)); !st) return st.error();
  }
  return lines.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t piece = 1 + data[0] % 64;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto whole = read_in_pieces(text, text.size() + 1);
  auto pieces = read_in_pieces(text, piece);
  if (whole.ok() != pieces.ok()) __builtin_trap();
  if (!whole.ok()) {
    if (whole.error().code != EIO || pieces.error().code != EIO) __builtin_trap();
    return 0;
  }
  if (whole->size() != pieces->size()) __builtin_trap();
  for (std::size_t i = 0; i < whole->size(); ++i) {
    const auto& a = (*whole)[i];
    const auto& b = (*pieces)[i];
    if (a.kind != b.kind || a.path != b.path || a.path.empty() || a.path[0] != '/') __builtin_trap();
  }
  return 0;
}
