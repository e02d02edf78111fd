// The frontend's end of a vhost-user connection, as a test plays QEMU:
// messages out (with descriptors), replies in, each checked and bounded.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "tests/unit/send_with_fds.h"
#include "util/unique_fd.h"
#include "vhost_user/protocol.h"

namespace moat::test {

template <typename T>
std::vector<std::uint8_t> bytes_of(const T& v) {
  auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  return {p, p + sizeof v};
}

class VhostUserWire {
 public:
  static constexpr std::uint32_t kNeedReply = vhost_user::kVersion | vhost_user::kFlagNeedReply;

  VhostUserWire() = default;
  explicit VhostUserWire(UniqueFd fd) : wire_(std::move(fd)) {}

  void attach(UniqueFd fd) { wire_ = std::move(fd); }
  int wire_fd() const { return wire_.get(); }
  void hang_up() { wire_.reset(); }

  // One message: header (request, flags, size) and payload, `fds` attached.
  bool send(std::uint32_t request, const std::vector<std::uint8_t>& payload, std::vector<int> fds = {},
            std::uint32_t flags = vhost_user::kVersion) {
    vhost_user::Header h{request, flags, static_cast<std::uint32_t>(payload.size())};
    std::vector<std::uint8_t> buf = bytes_of(h);
    buf.insert(buf.end(), payload.begin(), payload.end());
    return send_with_fds(wire_.get(), buf, fds);
  }
  bool send_raw(const std::vector<std::uint8_t>& bytes) {
    return ::send(wire_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  bool send_u64(std::uint32_t request, std::uint64_t v, std::vector<int> fds = {},
                std::uint32_t flags = vhost_user::kVersion) {
    return send(request, bytes_of(v), std::move(fds), flags);
  }
  bool send_state(std::uint32_t request, std::uint32_t index, std::uint32_t num) {
    return send(request, bytes_of(vhost_user::VringState{index, num}));
  }

  // One reply to `request`: its payload, or nullopt after 5 s, on a wrong
  // header or a payload past 512 bytes.
  std::optional<std::vector<std::uint8_t>> reply(std::uint32_t request) {
    pollfd p{wire_.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return std::nullopt;
    vhost_user::Header h{};
    if (::recv(wire_.get(), &h, sizeof h, MSG_WAITALL) != sizeof h) return std::nullopt;
    if (h.request != request || h.flags != (vhost_user::kVersion | vhost_user::kFlagReply) || h.size > 512)
      return std::nullopt;
    std::vector<std::uint8_t> out(h.size);
    if (h.size && ::recv(wire_.get(), out.data(), h.size, MSG_WAITALL) != h.size) return std::nullopt;
    return out;
  }
  std::optional<std::uint64_t> reply_u64(std::uint32_t request) {
    auto r = reply(request);
    if (!r || r->size() != 8) return std::nullopt;
    std::uint64_t v;
    std::memcpy(&v, r->data(), 8);
    return v;
  }

 private:
  UniqueFd wire_;
};

}  // namespace moat::test
