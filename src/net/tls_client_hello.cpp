#include "net/tls_client_hello.h"

#include <optional>

#include "net/policy.h"

namespace moat::net {
namespace {

constexpr std::uint8_t kHandshakeRecord = 22;
constexpr std::uint8_t kClientHello = 1;
constexpr std::uint16_t kServerNameExtension = 0;
constexpr std::uint8_t kHostName = 0;
constexpr std::size_t kMaxRecord = 16384 + 2048;

// Reads forward through `d`; any read past the end makes it fail for good.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> d) : d_(d) {}
  bool ok() const { return ok_; }
  std::size_t left() const { return ok_ ? d_.size() - at_ : 0; }
  std::uint32_t uint(int bytes) {
    std::uint32_t v = 0;
    if (!take(static_cast<std::size_t>(bytes))) return 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | d_[at_ - static_cast<std::size_t>(bytes) + static_cast<std::size_t>(i)];
    return v;
  }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    if (!take(n)) return {};
    return d_.subspan(at_ - n, n);
  }
  Reader sub(std::size_t n) { return Reader(bytes(n), ok_); }

 private:
  Reader(std::span<const std::uint8_t> d, bool ok) : d_(d), ok_(ok) {}
  bool take(std::size_t n) {
    if (!ok_ || d_.size() - at_ < n) return ok_ = false;
    at_ += n;
    return true;
  }
  std::span<const std::uint8_t> d_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

// The host name of a server_name extension's body, if it has a valid one.
std::optional<std::string> host_name(Reader ext) {
  Reader list = ext.sub(ext.uint(2));
  while (list.ok() && list.left() > 0) {
    std::uint32_t type = list.uint(1);
    auto name = list.bytes(list.uint(2));
    if (!list.ok()) return std::nullopt;
    if (type != kHostName) continue;
    std::string text(name.begin(), name.end());
    std::string normal = normalize_name(text);
    if (!valid_domain_name(normal)) return std::nullopt;
    return normal;
  }
  return std::nullopt;
}

}  // namespace

ServerName read_server_name(std::span<const std::uint8_t> data) {
  ServerName out;
  Reader record(data);
  if (record.uint(1) != kHandshakeRecord || !record.ok()) return out;
  std::uint32_t major = record.uint(1);
  record.uint(1);  // minor version
  std::uint32_t length = record.uint(2);
  if (!record.ok() || major != 3 || length > kMaxRecord) return out;
  out.kind = ServerName::Kind::kNotVisible;
  Reader handshake = record.sub(length);
  if (handshake.uint(1) != kClientHello) return out;
  Reader hello = handshake.sub(handshake.uint(3));
  hello.bytes(2 + 32);                 // version, random
  hello.bytes(hello.uint(1));          // session id
  hello.bytes(hello.uint(2));          // cipher suites
  hello.bytes(hello.uint(1));          // compression methods
  if (!hello.ok()) return out;
  out.kind = ServerName::Kind::kNone;
  if (hello.left() == 0) return out;   // no extensions at all
  Reader extensions = hello.sub(hello.uint(2));
  while (extensions.ok() && extensions.left() > 0) {
    std::uint32_t type = extensions.uint(2);
    Reader body = extensions.sub(extensions.uint(2));
    if (!extensions.ok()) break;
    if (type != kServerNameExtension) continue;
    if (auto name = host_name(body)) {
      out.kind = ServerName::Kind::kName;
      out.name = *name;
    } else {
      out.kind = ServerName::Kind::kNotVisible;  // a server_name we cannot read
    }
    return out;
  }
  if (!extensions.ok()) out.kind = ServerName::Kind::kNotVisible;
  return out;
}

}  // namespace moat::net
