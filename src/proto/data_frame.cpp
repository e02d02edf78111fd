#include "proto/data_frame.h"

#include <cstring>

#include "proto/frame_peek.h"

namespace moat::proto {
namespace {

// The map {"p": {"d": <payload>}, ...}: three entries, "p" first, then the
// inner map's one key.
constexpr char kMapHead[] = {'\xa3', '\x61', 'p', '\xa1', '\x61', 'd'};
static_assert(sizeof(kMapHead) == 6);

// A CBOR head of major type `major` with the shortest argument encoding.
std::size_t put_head(char* dst, unsigned major, std::uint64_t arg) {
  auto m = static_cast<unsigned char>(major << 5);
  if (arg < 24) {
    dst[0] = static_cast<char>(m | arg);
    return 1;
  }
  int bytes = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffu ? 4 : 8;
  dst[0] = static_cast<char>(m | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27));
  for (int i = 0; i < bytes; ++i) dst[1 + i] = static_cast<char>(arg >> (8 * (bytes - 1 - i)));
  return 1 + static_cast<std::size_t>(bytes);
}

// After the payload: "t": <type>, "v": <version>.
std::size_t put_tail(char* dst, std::string_view type) {
  std::size_t pos = 0;
  dst[pos++] = '\x61';
  dst[pos++] = 't';
  pos += put_head(dst + pos, 3, type.size());
  std::memcpy(dst + pos, type.data(), type.size());
  pos += type.size();
  dst[pos++] = '\x61';
  dst[pos++] = 'v';
  pos += put_head(dst + pos, 0, kProtocolVersion);
  return pos;
}

void put_frame_header(char* dst, std::uint32_t stream, std::size_t body_size) {
  store_be32(static_cast<std::uint32_t>(body_size), dst);
  store_be32(stream, dst + 4);
  dst[8] = 0;  // no flags: a data frame never ends its stream
}

}  // namespace

std::optional<DataView> view_data_body(std::string_view body) {
  peek_detail::CborWalker walk(body);
  // The next item is a head of `major` whose argument `want` accepts.
  auto head = [&](unsigned major, auto want) -> std::optional<std::uint64_t> {
    auto h = walk.head();
    if (!h || h->major != major || !want(h->arg)) return std::nullopt;
    return h->arg;
  };
  auto count = [](std::uint64_t n) { return [n](std::uint64_t arg) { return arg == n; }; };
  auto any = [](std::uint64_t) { return true; };
  auto key = [&](char k) { return head(3, count(1)) && walk.string_bytes(1) == std::string_view(&k, 1); };

  if (!head(5, count(3)) || !key('p') || !head(5, count(1)) || !key('d')) return std::nullopt;
  auto length = head(2, any);
  auto bytes = length ? walk.string_bytes(*length) : std::nullopt;
  if (!bytes || !key('t')) return std::nullopt;
  auto type_length = head(3, [](std::uint64_t n) { return n >= 1 && n <= kMaxTypeLength; });
  auto type = type_length ? walk.string_bytes(*type_length) : std::nullopt;
  if (!type) return std::nullopt;
  for (char c : *type)
    if (c < 0x21 || c > 0x7e) return std::nullopt;
  if (!key('v')) return std::nullopt;
  auto version = head(0, [](std::uint64_t v) { return v <= 0xffffffffu; });
  if (!version || walk.remaining() != 0) return std::nullopt;
  return DataView{*type, *bytes, static_cast<std::uint32_t>(*version)};
}

std::size_t data_tail_size(std::string_view type) {
  char scratch[2 + 9 + kMaxTypeLength + 2 + 9];
  return put_tail(scratch, type.substr(0, kMaxTypeLength));
}

void append_data_frame(std::string& out, std::uint32_t stream, std::string_view type, std::string_view bytes) {
  type = type.substr(0, kMaxTypeLength);
  char length_head[9];
  std::size_t length_size = put_head(length_head, 2, bytes.size());
  char tail[2 + 9 + kMaxTypeLength + 2 + 9];
  std::size_t tail_size = put_tail(tail, type);
  std::size_t body = sizeof(kMapHead) + length_size + bytes.size() + tail_size;
  char header[kHeaderSize];
  put_frame_header(header, stream, body);
  out.reserve(out.size() + kHeaderSize + body);
  out.append(header, kHeaderSize);
  out.append(kMapHead, sizeof(kMapHead));
  out.append(length_head, length_size);
  out.append(bytes.data(), bytes.size());
  out.append(tail, tail_size);
}

void write_data_head(char* dst, std::uint32_t stream, std::string_view type, std::uint32_t n) {
  std::size_t body = sizeof(kMapHead) + 5 + n + data_tail_size(type);
  put_frame_header(dst, stream, body);
  std::memcpy(dst + kHeaderSize, kMapHead, sizeof(kMapHead));
  char* len = dst + kHeaderSize + sizeof(kMapHead);
  len[0] = '\x5a';
  store_be32(n, len + 1);
}

void write_data_tail(char* dst, std::string_view type) { put_tail(dst, type.substr(0, kMaxTypeLength)); }

}  // namespace moat::proto
