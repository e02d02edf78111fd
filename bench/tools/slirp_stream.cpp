// A measurement tool for the network design (docs/network.md): libslirp in
// a process of its own behind QEMU's `-netdev stream`, the shape the shim
// would have if it ran the stack on frames QEMU passes it. bench/net_peer.sh
// times it against QEMU's built-in user network (the same libslirp inside
// QEMU). Not a network for sandboxes: no policy, IPv4 only, one guest.
//
// Usage: moat-bench-slirp SOCKET_PATH
//   Listens on SOCKET_PATH; QEMU connects with
//   -netdev stream,id=n0,server=off,addr.type=unix,addr.path=SOCKET_PATH
//   Guest: 10.0.2.15/24, gateway 10.0.2.2 (the host's loopback), as QEMU's.
#include <arpa/inet.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <list>
#include <string>
#include <vector>

namespace {

struct Timer {
  SlirpTimerId id;
  void* cb_opaque;
  std::int64_t expire_ms = -1;  // -1: not armed
};

struct State {
  int qemu = -1;
  Slirp* slirp = nullptr;
  std::list<Timer> timers;
  std::vector<pollfd> fds;
};

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool write_all(int fd, const void* data, std::size_t len) {
  auto* p = static_cast<const std::uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

// A frame to the guest: QEMU's stream framing, a 4-byte big-endian length.
ssize_t send_packet(const void* buf, size_t len, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  std::uint32_t be = htonl(static_cast<std::uint32_t>(len));
  if (!write_all(s->qemu, &be, 4) || !write_all(s->qemu, buf, len)) return -1;
  return static_cast<ssize_t>(len);
}

void guest_error(const char* msg, void*) { std::fprintf(stderr, "slirp: guest error: %s\n", msg); }
std::int64_t clock_get_ns(void*) { return now_ns(); }
void* timer_new_opaque(SlirpTimerId id, void* cb_opaque, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  s->timers.push_back(Timer{id, cb_opaque});
  return &s->timers.back();
}
void timer_free(void* timer, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  s->timers.remove_if([&](const Timer& t) { return &t == timer; });
}
void timer_mod(void* timer, std::int64_t expire_ms, void*) { static_cast<Timer*>(timer)->expire_ms = expire_ms; }
void register_poll_fd(int, void*) {}
void unregister_poll_fd(int, void*) {}
void notify(void*) {}

int add_poll(int fd, int events, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  short e = 0;
  if (events & SLIRP_POLL_IN) e |= POLLIN;
  if (events & SLIRP_POLL_OUT) e |= POLLOUT;
  if (events & SLIRP_POLL_PRI) e |= POLLPRI;
  s->fds.push_back(pollfd{fd, e, 0});
  return static_cast<int>(s->fds.size() - 1);
}

int get_revents(int idx, void* opaque) {
  auto* s = static_cast<State*>(opaque);
  short r = s->fds[static_cast<std::size_t>(idx)].revents;
  int out = 0;
  if (r & POLLIN) out |= SLIRP_POLL_IN;
  if (r & POLLOUT) out |= SLIRP_POLL_OUT;
  if (r & POLLPRI) out |= SLIRP_POLL_PRI;
  if (r & POLLERR) out |= SLIRP_POLL_ERR;
  if (r & POLLHUP) out |= SLIRP_POLL_HUP;
  return out;
}

int accept_qemu(const char* path) {
  int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof sa.sun_path) return -1;
  std::strcpy(sa.sun_path, path);
  ::unlink(path);
  if (::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(l, 1) != 0) return -1;
  std::printf("listening\n");
  std::fflush(stdout);
  int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(l);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: moat-bench-slirp SOCKET_PATH\n");
    return 2;
  }
  State s;
  s.qemu = accept_qemu(argv[1]);
  if (s.qemu < 0) {
    std::perror("moat-bench-slirp: socket");
    return 1;
  }
  SlirpConfig cfg{};
  cfg.version = 4;
  cfg.in_enabled = true;
  ::inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
  ::inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
  ::inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
  ::inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
  ::inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
  SlirpCb cb{};
  cb.send_packet = send_packet;
  cb.guest_error = guest_error;
  cb.clock_get_ns = clock_get_ns;
  cb.timer_free = timer_free;
  cb.timer_mod = timer_mod;
  cb.register_poll_fd = register_poll_fd;
  cb.unregister_poll_fd = unregister_poll_fd;
  cb.notify = notify;
  cb.timer_new_opaque = timer_new_opaque;
  s.slirp = slirp_new(&cfg, &cb, &s);

  std::vector<std::uint8_t> in;
  std::vector<std::uint8_t> buf(1 << 20);
  while (true) {
    s.fds.clear();
    s.fds.push_back(pollfd{s.qemu, POLLIN, 0});
    std::uint32_t timeout = 1000;
    slirp_pollfds_fill(s.slirp, &timeout, add_poll, &s);
    std::int64_t now_ms = now_ns() / 1000000;
    for (const Timer& t : s.timers)
      if (t.expire_ms >= 0) timeout = static_cast<std::uint32_t>(std::clamp<std::int64_t>(t.expire_ms - now_ms, 0, timeout));
    int n = ::poll(s.fds.data(), s.fds.size(), static_cast<int>(timeout));
    if (n < 0 && errno != EINTR) return 1;
    if (n > 0 && (s.fds[0].revents & (POLLIN | POLLHUP))) {
      ssize_t got = ::read(s.qemu, buf.data(), buf.size());
      if (got <= 0) return 0;  // QEMU went away
      in.insert(in.end(), buf.begin(), buf.begin() + got);
      std::size_t at = 0;
      while (in.size() - at >= 4) {
        std::uint32_t len;
        std::memcpy(&len, in.data() + at, 4);
        len = ntohl(len);
        if (len > 65536 + 64) return 1;  // not a frame
        if (in.size() - at - 4 < len) break;
        slirp_input(s.slirp, in.data() + at + 4, static_cast<int>(len));
        at += 4 + len;
      }
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(at));
    }
    slirp_pollfds_poll(s.slirp, n < 0, get_revents, &s);
    now_ms = now_ns() / 1000000;
    for (auto it = s.timers.begin(); it != s.timers.end();) {
      Timer& t = *it++;
      if (t.expire_ms >= 0 && t.expire_ms <= now_ms) {
        t.expire_ms = -1;
        slirp_handle_timer(s.slirp, t.id, t.cb_opaque);
      }
    }
  }
}
