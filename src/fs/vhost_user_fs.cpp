#include "fs/vhost_user_fs.h"

#include <linux/fuse.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "fs/fuse_reply.h"
#include "fs/fuse_request.h"
#include "vhost_user/guest_memory.h"
#include "vhost_user/protocol.h"
#include "vhost_user/virtqueue.h"

namespace moat::fs {

namespace vu = vhost_user;
using vu::GuestMemory;
using vu::GuestRegionSpec;
using vu::kVirtqueueMaxSize;
using vu::Virtqueue;
using vu::VirtqueueChain;
using vu::VirtqueueLayout;

namespace {

// What we offer. EVENT_IDX saves most kicks and interrupts under load;
// INDIRECT_DESC lets the driver put a 1 MiB READ (256 pages) in one slot.
constexpr std::uint64_t kDeviceFeatures = vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures |
                                          vu::kFeatureIndirectDesc | vu::kFeatureEventIdx;
// MQ: GET_QUEUE_NUM tells QEMU how many queues we serve. REPLY_ACK: QEMU
// waits for SET_MEM_TABLE and friends to be applied before going on.
constexpr std::uint64_t kProtocolFeatures = vu::kProtocolMq | vu::kProtocolReplyAck;

Result<UniqueFd> make_eventfd() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return errno_error("eventfd");
  return UniqueFd(fd);
}

void poke(int fd) {
  std::uint64_t one = 1;
  // EAGAIN (counter saturated) still leaves the fd readable: nothing lost.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void drain_eventfd(int fd) {
  std::uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(fd, &v, sizeof v);
}

Error queue_error(unsigned index, const Error& e) {
  return e.wrap("virtio-fs queue " + std::to_string(index));
}

}  // namespace

// One virtqueue as the frontend configured it, and its worker.
struct QueueState {
  unsigned index = 0;
  // Configuration (socket thread only; read by the worker only at start).
  std::uint32_t num = 0;
  vu::VringAddr addr{};
  bool addr_set = false;
  std::uint16_t base = 0;  // SET_VRING_BASE, and where a stopped worker left off
  UniqueFd kick;
  UniqueFd err;
  bool enabled = false;

  // The call fd changes under a running worker (QEMU swaps it when it
  // masks interrupts), hence the lock.
  std::mutex call_mu;
  UniqueFd call;

  std::thread worker;
  UniqueFd worker_stop;
  std::atomic<bool> running{false};

  void signal() {
    std::lock_guard lock(call_mu);
    if (call) poke(call.get());
  }
};

class VhostUserFsDevice::Impl {
 public:
  Impl(std::string path, FuseServer& server, VhostUserFsOptions options)
      : path_(std::move(path)), server_(server), options_(options) {}
  ~Impl();

  Status init_listen();
  Status run();
  void stop() { poke(stop_fd_.get()); }

 private:
  Result<bool> accept_frontend();
  Status serve_connection();
  Status handle(vu::Message& msg);
  Status dispatch(vu::Message& msg, bool& replied);
  Status set_features(const vu::Message& msg);
  Status set_protocol_features(const vu::Message& msg);
  Status set_mem_table(vu::Message& msg);
  Result<QueueState*> queue(std::uint32_t index, std::uint32_t request);
  Status set_vring_fd(vu::Message& msg);
  Status get_vring_base(const vu::Message& msg);
  Status set_vring_enable(const vu::Message& msg);

  Status maybe_start(QueueState& q);
  void stop_worker(QueueState& q);
  void stop_all();
  void worker_loop(QueueState& q, Virtqueue vq);
  Status drain(QueueState& q, Virtqueue& vq, std::vector<std::uint8_t>& buf, FuseReply& reply,
               VirtqueueChain& chain);
  void report(Error e);

  std::string path_;
  FuseServer& server_;
  VhostUserFsOptions options_;
  UniqueFd listen_fd_;
  UniqueFd conn_;
  UniqueFd stop_fd_;
  UniqueFd error_fd_;  // workers poke it after recording `error_`

  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::unique_ptr<GuestMemory> memory_;
  std::vector<std::unique_ptr<QueueState>> queues_;

  std::mutex error_mu_;
  std::optional<Error> error_;
};

VhostUserFsDevice::Impl::~Impl() {
  stop_all();
  if (listen_fd_) ::unlink(path_.c_str());
}

Status VhostUserFsDevice::Impl::init_listen() {
  if (options_.request_queues == 0 || options_.request_queues > 254)
    return make_error("vhost-user-fs: request_queues must be 1..254", EINVAL);
  if (options_.queue_size == 0 || options_.queue_size > kVirtqueueMaxSize)
    return make_error("vhost-user-fs: queue_size must be 1..32768", EINVAL);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof sa.sun_path)
    return make_error("vhost-user-fs socket path too long: " + path_, ENAMETOOLONG);
  std::memcpy(sa.sun_path, path_.data(), path_.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket");
  UniqueFd sock(fd);
  // A socket file left by an earlier run would make bind fail.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path_.c_str());
  // Only our user may connect: whoever connects gets the guest's files.
  mode_t old = ::umask(0177);
  int rc = ::bind(sock.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) return errno_error("bind " + path_, bind_errno);
  if (::chmod(path_.c_str(), 0600) != 0) return errno_error("chmod " + path_);
  if (::listen(sock.get(), 1) != 0) return errno_error("listen " + path_);
  listen_fd_ = std::move(sock);
  MOAT_ASSIGN_OR_RETURN(stop_fd_, make_eventfd());
  MOAT_ASSIGN_OR_RETURN(error_fd_, make_eventfd());
  for (unsigned i = 0; i < 1 + options_.request_queues; ++i) {
    queues_.push_back(std::make_unique<QueueState>());
    queues_.back()->index = i;
  }
  return ok_status();
}

Result<bool> VhostUserFsDevice::Impl::accept_frontend() {
  pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll vhost-user socket");
    }
    if (fds[1].revents) return false;
    int c = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return errno_error("accept " + path_);
    }
    conn_.reset(c);
    return true;
  }
}

Status VhostUserFsDevice::Impl::run() {
  MOAT_ASSIGN_OR_RETURN(bool connected, accept_frontend());
  if (!connected) return ok_status();
  Status st = serve_connection();
  stop_all();
  memory_.reset();
  conn_.reset();
  if (!st.ok()) return st.error().wrap("vhost-user-fs " + path_);
  return ok_status();
}

Status VhostUserFsDevice::Impl::serve_connection() {
  vu::Message msg;
  pollfd fds[3] = {{conn_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0},
                   {error_fd_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll vhost-user connection");
    }
    if (fds[1].revents) return ok_status();
    if (fds[2].revents) {
      std::lock_guard lock(error_mu_);
      if (error_) return *error_;
    }
    if (fds[0].revents == 0) continue;
    MOAT_ASSIGN_OR_RETURN(bool got, vu::receive(conn_.get(), msg));
    if (!got) return ok_status();  // the frontend hung up
    MOAT_TRY(handle(msg));
  }
}

Status VhostUserFsDevice::Impl::handle(vu::Message& msg) {
  bool replied = false;
  Status st = dispatch(msg, replied);
  // With REPLY_ACK the frontend may ask for a status reply to any request
  // that has none of its own: 0 for success.
  if (!replied && msg.need_reply() && (protocol_features_ & vu::kProtocolReplyAck)) {
    Status ack = vu::send_u64(conn_.get(), msg.header, st.ok() ? 0 : 1);
    if (st.ok() && !ack.ok()) return ack;
  }
  if (!st.ok()) return st.error().wrap(vu::request_name(msg.header.request));
  return ok_status();
}

Status VhostUserFsDevice::Impl::dispatch(vu::Message& msg, bool& replied) {
  const int fd = conn_.get();
  switch (msg.header.request) {
    case vu::kGetFeatures:
      replied = true;
      return vu::send_u64(fd, msg.header, kDeviceFeatures);
    case vu::kSetFeatures:
      return set_features(msg);
    case vu::kGetProtocolFeatures:
      replied = true;
      return vu::send_u64(fd, msg.header, kProtocolFeatures);
    case vu::kSetProtocolFeatures:
      return set_protocol_features(msg);
    case vu::kSetOwner:
      return ok_status();
    case vu::kResetOwner:
      // Deprecated, but QEMU still sends it when it stops the device
      // without RESET_DEVICE: back to the state after connecting.
      stop_all();
      for (auto& q : queues_) {
        q->num = 0;
        q->addr_set = false;
        q->base = 0;
        q->kick.reset();
        q->err.reset();
        q->enabled = false;
        std::lock_guard lock(q->call_mu);
        q->call.reset();
      }
      return ok_status();
    case vu::kGetQueueNum:
      replied = true;
      return vu::send_u64(fd, msg.header, queues_.size());
    case vu::kSetMemTable:
      return set_mem_table(msg);
    case vu::kSetVringNum: {
      MOAT_ASSIGN_OR_RETURN(auto s, msg.as<vu::VringState>());
      MOAT_ASSIGN_OR_RETURN(QueueState * q, queue(s.index, msg.header.request));
      if (s.num == 0 || s.num > options_.queue_size || (s.num & (s.num - 1)))
        return make_error("queue size " + std::to_string(s.num) + " (a power of two up to " +
                              std::to_string(options_.queue_size) + ")",
                          EINVAL);
      stop_worker(*q);
      q->num = s.num;
      return maybe_start(*q);
    }
    case vu::kSetVringAddr: {
      MOAT_ASSIGN_OR_RETURN(auto a, msg.as<vu::VringAddr>());
      MOAT_ASSIGN_OR_RETURN(QueueState * q, queue(a.index, msg.header.request));
      if (a.flags & 1) return make_error("dirty logging (migration) is not supported", ENOTSUP);
      stop_worker(*q);
      q->addr = a;
      q->addr_set = true;
      return maybe_start(*q);
    }
    case vu::kSetVringBase: {
      MOAT_ASSIGN_OR_RETURN(auto s, msg.as<vu::VringState>());
      MOAT_ASSIGN_OR_RETURN(QueueState * q, queue(s.index, msg.header.request));
      if (s.num > 0xffff) return make_error("ring base " + std::to_string(s.num), EINVAL);
      stop_worker(*q);
      q->base = static_cast<std::uint16_t>(s.num);
      return maybe_start(*q);
    }
    case vu::kGetVringBase:
      replied = true;
      return get_vring_base(msg);
    case vu::kSetVringKick:
    case vu::kSetVringCall:
    case vu::kSetVringErr:
      return set_vring_fd(msg);
    case vu::kSetVringEnable:
      return set_vring_enable(msg);
    case vu::kSetBackendReqFd:
      // Not offered (BACKEND_REQ): DAX mappings are not supported. Close it.
      return ok_status();
    case vu::kSetLogBase:
    case vu::kSetLogFd:
      return make_error("dirty logging (migration) is not supported", ENOTSUP);
    default:
      return make_error("unsupported request", ENOTSUP);
  }
}

Status VhostUserFsDevice::Impl::set_features(const vu::Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint64_t f, msg.as<std::uint64_t>());
  if (f & ~kDeviceFeatures)
    return make_error("features 0x" + [&] {
      char b[20];
      std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(f & ~kDeviceFeatures));
      return std::string(b);
    }() + " were not offered", EINVAL);
  // Feature changes apply to rings started afterwards.
  features_ = f;
  return ok_status();
}

Status VhostUserFsDevice::Impl::set_protocol_features(const vu::Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint64_t f, msg.as<std::uint64_t>());
  if (f & ~kProtocolFeatures) return make_error("protocol features were not offered", EINVAL);
  protocol_features_ = f;
  return ok_status();
}

Status VhostUserFsDevice::Impl::set_mem_table(vu::Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint32_t n, msg.as<std::uint32_t>());
  if (n == 0 || n > vu::kMaxMemRegions)
    return make_error(std::to_string(n) + " memory regions", EINVAL);
  if (msg.header.size < vu::kMemTableHeader + n * sizeof(vu::MemRegion))
    return make_error("payload too short for " + std::to_string(n) + " regions", EPROTO);
  std::vector<GuestRegionSpec> specs(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    vu::MemRegion r;
    std::memcpy(&r, msg.payload.data() + vu::kMemTableHeader + i * sizeof r, sizeof r);
    specs[i] = {r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset};
  }
  MOAT_ASSIGN_OR_RETURN(GuestMemory mem, GuestMemory::map(specs, msg.fds));
  // The workers hold pointers into the old mappings: stop them, swap,
  // restart them on the new table (same ring addresses, same positions).
  std::vector<QueueState*> was_running;
  for (auto& q : queues_)
    if (q->running) {
      was_running.push_back(q.get());
      stop_worker(*q);
    }
  memory_ = std::make_unique<GuestMemory>(std::move(mem));
  for (QueueState* q : was_running) MOAT_TRY(maybe_start(*q));
  return ok_status();
}

Result<QueueState*> VhostUserFsDevice::Impl::queue(std::uint32_t index, std::uint32_t request) {
  if (index >= queues_.size())
    return make_error(vu::request_name(request) + " for queue " + std::to_string(index) +
                          " of " + std::to_string(queues_.size()),
                      EINVAL);
  return queues_[index].get();
}

Status VhostUserFsDevice::Impl::set_vring_fd(vu::Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint64_t v, msg.as<std::uint64_t>());
  if (v & ~(vu::kVringIndexMask | vu::kVringNoFd)) return make_error("bad payload", EINVAL);
  MOAT_ASSIGN_OR_RETURN(QueueState * q,
                        queue(static_cast<std::uint32_t>(v & vu::kVringIndexMask), msg.header.request));
  UniqueFd fd;
  if (!(v & vu::kVringNoFd)) {
    if (msg.fds.size() != 1) return make_error("expected one fd", EPROTO);
    fd = std::move(msg.fds[0]);
  }
  switch (msg.header.request) {
    case vu::kSetVringKick:
      // Without a kick fd the backend would have to poll the ring.
      if (!fd) return make_error("polling mode (no kick fd) is not supported", ENOTSUP);
      stop_worker(*q);
      q->kick = std::move(fd);
      // Without PROTOCOL_FEATURES a ring is enabled as soon as it starts.
      if (!(features_ & vu::kFeatureProtocolFeatures)) q->enabled = true;
      return maybe_start(*q);
    case vu::kSetVringCall: {
      std::lock_guard lock(q->call_mu);
      q->call = std::move(fd);
      return ok_status();
    }
    default:
      // We never report ring errors through it (run() ends instead).
      q->err = std::move(fd);
      return ok_status();
  }
}

Status VhostUserFsDevice::Impl::get_vring_base(const vu::Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto s, msg.as<vu::VringState>());
  MOAT_ASSIGN_OR_RETURN(QueueState * q, queue(s.index, msg.header.request));
  // Stops the ring: the worker leaves `base` at the next avail index, and
  // the ring only starts again with a new SET_VRING_KICK.
  stop_worker(*q);
  q->kick.reset();
  vu::VringState reply{s.index, q->base};
  std::uint8_t b[sizeof reply];
  std::memcpy(b, &reply, sizeof b);
  return vu::send_reply(conn_.get(), msg.header, b);
}

Status VhostUserFsDevice::Impl::set_vring_enable(const vu::Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto s, msg.as<vu::VringState>());
  MOAT_ASSIGN_OR_RETURN(QueueState * q, queue(s.index, msg.header.request));
  if (s.num > 1) return make_error("enable value " + std::to_string(s.num), EINVAL);
  q->enabled = s.num == 1;
  if (!q->enabled) {
    stop_worker(*q);
    return ok_status();
  }
  return maybe_start(*q);
}

Status VhostUserFsDevice::Impl::maybe_start(QueueState& q) {
  if (q.running || !q.enabled || !q.kick || !q.addr_set || q.num == 0 || !memory_) return ok_status();
  VirtqueueLayout layout;
  layout.num = static_cast<std::uint16_t>(q.num);
  layout.desc_addr = q.addr.desc_user_addr;
  layout.avail_addr = q.addr.avail_user_addr;
  layout.used_addr = q.addr.used_user_addr;
  layout.last_avail = q.base;
  layout.event_idx = features_ & vu::kFeatureEventIdx;
  layout.indirect = features_ & vu::kFeatureIndirectDesc;
  auto vq = Virtqueue::attach(*memory_, layout);
  if (!vq.ok()) return queue_error(q.index, vq.error());
  MOAT_ASSIGN_OR_RETURN(q.worker_stop, make_eventfd());
  q.running = true;
  q.worker = std::thread([this, &q, v = std::move(*vq)]() mutable { worker_loop(q, std::move(v)); });
  return ok_status();
}

void VhostUserFsDevice::Impl::stop_worker(QueueState& q) {
  if (!q.worker.joinable()) return;
  poke(q.worker_stop.get());
  q.worker.join();
  q.worker_stop.reset();
  q.running = false;
}

void VhostUserFsDevice::Impl::stop_all() {
  for (auto& q : queues_) stop_worker(*q);
}

void VhostUserFsDevice::Impl::report(Error e) {
  {
    std::lock_guard lock(error_mu_);
    if (!error_) error_ = std::move(e);
  }
  poke(error_fd_.get());
}

void VhostUserFsDevice::Impl::worker_loop(QueueState& q, Virtqueue vq) {
  std::vector<std::uint8_t> buf(kFuseRequestBufferSize);
  FuseReply reply;
  VirtqueueChain chain;
  chain.segments.reserve(64);
  pollfd fds[2] = {{q.kick.get(), POLLIN, 0}, {q.worker_stop.get(), POLLIN, 0}};
  for (;;) {
    // Drain before the first sleep too: the driver may have queued
    // requests before this ring (re)started.
    Status st = drain(q, vq, buf, reply, chain);
    if (!st.ok()) {
      // The queue is broken; its position stays where the bad chain is.
      q.base = vq.last_avail();
      report(queue_error(q.index, st.error()));
      return;
    }
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
      report(queue_error(q.index, errno_error("poll kick")));
      return;
    }
    if (fds[1].revents) break;
    if (fds[0].revents & POLLIN) drain_eventfd(q.kick.get());
  }
  q.base = vq.last_avail();
}

Status VhostUserFsDevice::Impl::drain(QueueState& q, Virtqueue& vq, std::vector<std::uint8_t>& buf,
                                      FuseReply& reply, VirtqueueChain& chain) {
  for (;;) {
    for (;;) {
      MOAT_ASSIGN_OR_RETURN(bool got, vq.pop(chain, buf));
      if (!got) break;
      server_.handle(std::span<const std::uint8_t>(buf.data(), chain.readable), reply);
      std::uint32_t used = 0;
      if (reply.should_send()) {
        if (reply.size() <= chain.writable) {
          used = vq.scatter(chain, reply.iovecs());
        } else if (chain.writable >= sizeof(fuse_out_header)) {
          // The driver sized the reply buffer too small (the server never
          // answers more than a request asks for): tell it with EIO rather
          // than truncating a reply.
          reply.error(EIO);
          used = vq.scatter(chain, reply.iovecs());
        }
        // No room even for a header: returned with nothing written.
      }
      vq.push(chain, used);
    }
    if (vq.should_signal()) q.signal();
    MOAT_ASSIGN_OR_RETURN(bool more, vq.arm_notification());
    if (!more) return ok_status();
  }
}

Result<std::unique_ptr<VhostUserFsDevice>> VhostUserFsDevice::listen(const std::string& socket_path,
                                                                     FuseServer& server,
                                                                     VhostUserFsOptions options) {
  auto impl = std::make_unique<Impl>(socket_path, server, options);
  MOAT_TRY(impl->init_listen());
  return std::unique_ptr<VhostUserFsDevice>(new VhostUserFsDevice(std::move(impl)));
}

VhostUserFsDevice::VhostUserFsDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VhostUserFsDevice::~VhostUserFsDevice() = default;
Status VhostUserFsDevice::run() { return impl_->run(); }
void VhostUserFsDevice::stop() { impl_->stop(); }

}  // namespace moat::fs
