#include "proto/text.h"

namespace moat {
namespace proto {
namespace {

using Json = nlohmann::json;

// Length of the well-formed UTF-8 sequence at s[i], or 0 if there is none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c == 0xe0) len = 3, lo = 0xa0;
  else if (c == 0xed) len = 3, hi = 0x9f;  // no surrogates
  else if (c >= 0xe1 && c <= 0xef) len = 3;
  else if (c == 0xf0) len = 4, lo = 0x90;
  else if (c >= 0xf1 && c <= 0xf3) len = 4;
  else if (c == 0xf4) len = 4, hi = 0x8f;  // at most U+10FFFF
  else return 0;
  if (s.size() - i < len) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  return len;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

}  // namespace proto

// The public text helpers (include/moat/text.h) live with the wire forms
// that need them.
bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = proto::utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string lossy_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = proto::utf8_sequence(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

namespace proto {

std::string dump_lossy(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Json bytes_value(std::string_view s) { return Json::binary(std::vector<std::uint8_t>(s.begin(), s.end())); }

Json text_value(std::string_view s) { return is_utf8(s) ? Json(std::string(s)) : bytes_value(s); }

std::optional<std::string> string_bytes(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (v.is_binary()) {
    const auto& b = v.get_binary();
    return std::string(b.begin(), b.end());
  }
  return std::nullopt;
}

Json bytes_to_json(std::string_view s) {
  if (is_utf8(s)) return std::string(s);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * s.size());
  for (unsigned char c : s) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return Json{{"hex", hex}};
}

std::optional<std::string> bytes_from_json(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (!v.is_object() || v.size() != 1 || !v.contains("hex") || !v["hex"].is_string()) return std::nullopt;
  const auto& hex = v["hex"].get_ref<const std::string&>();
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

Json bytes_list_to_json(const std::vector<std::string>& list) {
  Json a = Json::array();
  for (const auto& s : list) a.push_back(bytes_to_json(s));
  return a;
}

std::optional<std::vector<std::string>> bytes_list_from_json(const Json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& item : v) {
    auto s = bytes_from_json(item);
    if (!s) return std::nullopt;
    out.push_back(std::move(*s));
  }
  return out;
}

}  // namespace proto
}  // namespace moat
