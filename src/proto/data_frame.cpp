#include "proto/data_frame.h"

#include <cstring>

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

// Reads a head of major type `major` at `pos` (any argument width up to 4
// bytes); advances `pos`.
std::optional<std::uint64_t> get_head(std::string_view b, std::size_t& pos, unsigned major) {
  if (pos >= b.size()) return std::nullopt;
  auto initial = static_cast<unsigned char>(b[pos++]);
  if ((initial >> 5) != major) return std::nullopt;
  unsigned info = initial & 0x1f;
  if (info < 24) return info;
  std::size_t n = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : 0;
  if (n == 0 || b.size() - pos < n) return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos++]);
  return v;
}

bool take(std::string_view b, std::size_t& pos, std::string_view want) {
  if (b.size() - pos < want.size() || b.substr(pos, want.size()) != want) return false;
  pos += want.size();
  return true;
}

}  // namespace

std::optional<DataView> view_data_body(std::string_view b) {
  std::size_t pos = 0;
  if (!take(b, pos, std::string_view(kMapHead, sizeof(kMapHead)))) return std::nullopt;
  auto len = get_head(b, pos, 2);
  if (!len || *len > b.size() - pos) return std::nullopt;
  DataView v;
  v.bytes = b.substr(pos, static_cast<std::size_t>(*len));
  pos += static_cast<std::size_t>(*len);
  if (!take(b, pos, "\x61t")) return std::nullopt;
  auto tlen = get_head(b, pos, 3);
  if (!tlen || *tlen == 0 || *tlen > kMaxTypeLength || *tlen > b.size() - pos) return std::nullopt;
  v.type = b.substr(pos, static_cast<std::size_t>(*tlen));
  for (char c : v.type)
    if (c < 0x21 || c > 0x7e) return std::nullopt;
  pos += static_cast<std::size_t>(*tlen);
  if (!take(b, pos, "\x61v")) return std::nullopt;
  auto version = get_head(b, pos, 0);
  if (!version || *version > 0xffffffffu || pos != b.size()) return std::nullopt;
  v.version = static_cast<std::uint32_t>(*version);
  return v;
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
