// What an envd client and a guest hand the E2B front end besides uploads:
// a Connect request body (one envelope, a JSON message) and the guest's
// /etc/passwd and /etc/group. Input: the first byte picks which. Checked:
// an accepted envelope's message is exactly the bytes after its head, and
// every account read has a name and an absolute home.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/e2b/connect_protocol.h"
#include "server/e2b/guest_users.h"
#include "util/json_object.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    auto msg = moat::server::e2b::single_message(in);
    if (msg) {
      require(msg->size() + moat::server::e2b::kEnvelopeHeadSize == in.size());
      require(msg->data() == in.data() + moat::server::e2b::kEnvelopeHeadSize);
      (void)moat::parse_json_object(*msg, "request", 1 << 20);
    }
    return 0;
  }
  std::size_t split = in.find('\0');
  std::string_view passwd = in.substr(0, split);
  std::string_view group = split == std::string_view::npos ? std::string_view() : in.substr(split + 1);
  auto users = moat::server::e2b::GuestUsers::parse(passwd, group);
  std::size_t line_start = 0;
  while (line_start < passwd.size()) {
    std::size_t end = passwd.find('\n', line_start);
    std::string_view line = passwd.substr(line_start, end == std::string_view::npos ? std::string_view::npos : end - line_start);
    std::string name(line.substr(0, line.find(':')));
    if (auto u = users.by_name(name)) {
      require(!u->name.empty());
      require(!u->home.empty() && u->home.front() == '/');
      require(moat::server::e2b::resolve_guest_path("x", u->home).front() == '/');
    }
    if (end == std::string_view::npos) break;
    line_start = end + 1;
  }
  return 0;
}
