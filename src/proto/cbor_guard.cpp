#include "proto/cbor_guard.h"

#include <cstdint>
#include <vector>

namespace moat::proto {
namespace {

struct Cursor {
  const unsigned char* p;
  std::size_t size;
  std::size_t pos = 0;

  std::size_t remaining() const { return size - pos; }
};

// Reads the argument of an item whose initial byte has additional info `ai`.
Result<std::uint64_t> read_argument(Cursor& c, unsigned ai) {
  if (ai < 24) return std::uint64_t{ai};
  std::size_t n = 0;
  switch (ai) {
    case 24: n = 1; break;
    case 25: n = 2; break;
    case 26: n = 4; break;
    case 27: n = 8; break;
    default: return make_error("cbor: indefinite or reserved length not accepted");
  }
  if (c.remaining() < n) return make_error("cbor: truncated item header");
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | c.p[c.pos++];
  return v;
}

}  // namespace

Status check_cbor_structure(std::string_view bytes, std::size_t max_depth) {
  Cursor c{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()};
  // Each entry counts the items still expected in an open array or map.
  std::vector<std::uint64_t> open;
  std::uint64_t pending_top = 1;  // exactly one top-level item
  while (true) {
    std::uint64_t& need = open.empty() ? pending_top : open.back();
    if (need == 0) {
      if (open.empty()) break;
      open.pop_back();
      continue;
    }
    --need;
    if (c.remaining() == 0) return make_error("cbor: truncated body");
    unsigned char initial = c.p[c.pos++];
    unsigned major = initial >> 5;
    unsigned ai = initial & 0x1f;
    auto arg = read_argument(c, ai);
    if (!arg) return arg.error();
    std::uint64_t v = *arg;
    switch (major) {
      case 0:
      case 1:
        break;
      case 2:
      case 3:
        if (v > c.remaining()) return make_error("cbor: string length past end of body");
        c.pos += static_cast<std::size_t>(v);
        break;
      case 4:
      case 5: {
        if (open.size() + 1 > max_depth) return make_error("cbor: nesting too deep");
        std::uint64_t items = major == 5 ? v * 2 : v;
        // Every item takes at least one byte, so a count past the rest of the
        // body is a lie meant to make a parser reserve memory.
        if (v > c.remaining() || items > c.remaining())
          return make_error("cbor: container count past end of body");
        open.push_back(items);
        break;
      }
      case 6:
        return make_error("cbor: tags not accepted");
      case 7:
        // false/true/null/undefined, floats; simple values other than those
        // are rejected.
        if (ai < 20 || ai == 24) return make_error("cbor: unassigned simple value");
        break;
    }
  }
  if (c.remaining() != 0) return make_error("cbor: trailing bytes after body");
  return ok_status();
}

}  // namespace moat::proto
