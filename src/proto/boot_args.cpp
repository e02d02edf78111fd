#include "proto/boot_args.h"

#include <cerrno>

#include "util/hex.h"

namespace moat::proto {
namespace {

bool plain_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ',' || c == ':' || c == '/' || c == '+' || c == '-';
}

bool label_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// Why `name` is not an RFC 1123 host name, or "" if it is one.
std::string hostname_problem(std::string_view name) {
  if (name.empty()) return "it is empty";
  if (name.size() > 253) return "it is longer than 253 characters";
  if (name.size() > kMaxHostnameLength)
    return "it is longer than " + std::to_string(kMaxHostnameLength) + " characters (the Linux limit)";
  std::size_t start = 0;
  while (true) {
    std::size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return "it has an empty label (\"..\", or a '.' at an end)";
    if (label.size() > 63) return "a label is longer than 63 characters";
    for (char c : label) {
      if (!label_byte(c)) return "labels may hold only letters, digits and '-'";
    }
    if (label.front() == '-' || label.back() == '-') return "a label starts or ends with '-'";
    if (dot == std::string_view::npos) return "";
    start = dot + 1;
  }
}

}  // namespace

std::string encode_boot_value(std::string_view value) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (plain_byte(c)) {
      out += static_cast<char>(c);
      continue;
    }
    out += '%';
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> decode_boot_value(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      out += encoded[i];
      continue;
    }
    if (i + 2 >= encoded.size()) return std::nullopt;
    int hi = hex_value(encoded[i + 1]), lo = hex_value(encoded[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string boot_word(std::string_view key, std::string_view value) {
  return std::string(key) + "=" + encode_boot_value(value);
}

bool valid_hostname(std::string_view name) { return hostname_problem(name).empty(); }

Status check_hostname(std::string_view name) {
  std::string why = hostname_problem(name);
  if (why.empty()) return ok_status();
  return make_error("invalid host name \"" + std::string(name.substr(0, 80)) + "\": " + why +
                        " (RFC 1123: letters, digits and '-' in labels of 1 to 63 characters joined by '.')",
                    EINVAL);
}

}  // namespace moat::proto
