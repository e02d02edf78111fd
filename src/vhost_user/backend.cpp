#include "vhost_user/backend.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "vhost_user/event_fd.h"
#include "vhost_user/vring.h"

namespace moat::vhost_user {

namespace {

std::string hex(std::uint64_t v) {
  char b[20];
  std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

Backend::Backend(std::string path, Device& device) : path_(std::move(path)), device_(device) {}

Backend::~Backend() {
  stop_all();
  if (listen_fd_) ::unlink(path_.c_str());
}

Result<std::unique_ptr<Backend>> Backend::listen(const std::string& socket_path, Device& device) {
  std::unique_ptr<Backend> b(new Backend(socket_path, device));
  MOAT_TRY(b->init());
  MOAT_TRY(b->bind_socket());
  return b;
}

Result<std::unique_ptr<Backend>> Backend::adopt(UniqueFd connection, Device& device) {
  if (!connection) return make_error("vhost-user: no connection to adopt", EBADF);
  std::unique_ptr<Backend> b(new Backend("", device));
  MOAT_TRY(b->init());
  b->conn_ = std::move(connection);
  return b;
}

// What every backend needs whatever its socket: the device checked, the
// wake-up fds, one vring per queue.
Status Backend::init() {
  unsigned queues = device_.num_queues();
  if (queues == 0 || queues > kMaxQueues)
    return make_error(where() + ": " + std::to_string(queues) + " queues", EINVAL);
  unsigned size = device_.max_queue_size();
  if (size == 0 || size > kVirtqueueMaxSize)
    return make_error(where() + ": queue size " + std::to_string(size), EINVAL);
  if (device_.config().size() > kMaxConfigSize)
    return make_error(where() + ": config space over " + std::to_string(kMaxConfigSize) + " bytes",
                      EINVAL);
  MOAT_ASSIGN_OR_RETURN(stop_fd_, make_event_fd());
  MOAT_ASSIGN_OR_RETURN(error_fd_, make_event_fd());
  for (unsigned i = 0; i < queues; ++i) vrings_.push_back(std::make_unique<Vring>(i));
  return ok_status();
}

Status Backend::bind_socket() {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof sa.sun_path)
    return make_error(where() + " socket path too long: " + path_, ENAMETOOLONG);
  std::memcpy(sa.sun_path, path_.data(), path_.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket");
  UniqueFd sock(fd);
  // A socket file left by an earlier run would make bind fail.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path_.c_str());
  // Only our user may connect: whoever connects gets the device (for a
  // file system, the guest's files).
  mode_t old = ::umask(0177);
  int rc = ::bind(sock.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) return errno_error("bind " + path_, bind_errno);
  if (::chmod(path_.c_str(), 0600) != 0) return errno_error("chmod " + path_);
  if (::listen(sock.get(), 1) != 0) return errno_error("listen " + path_);
  listen_fd_ = std::move(sock);
  return ok_status();
}

std::string Backend::where() const {
  std::string w = "vhost-user-" + std::string(device_.name());
  if (!path_.empty()) w += " " + path_;
  return w;
}

std::uint64_t Backend::protocol_features() const {
  // MQ: GET_QUEUE_NUM tells QEMU how many queues we serve. REPLY_ACK: QEMU
  // waits for SET_MEM_TABLE and friends to be applied before going on.
  std::uint64_t f = kProtocolMq | kProtocolReplyAck;
  if (!device_.config().empty()) f |= kProtocolConfig;
  return f;
}

void Backend::stop() { notify_event_fd(stop_fd_.get()); }

Result<bool> Backend::accept_frontend() {
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

Status Backend::run() {
  if (!conn_) {
    MOAT_ASSIGN_OR_RETURN(bool connected, accept_frontend());
    if (!connected) return ok_status();
  }
  Status st = serve_connection();
  stop_all();
  memory_.reset();
  conn_.reset();
  if (!st.ok()) return st.error().wrap(where());
  return ok_status();
}

Status Backend::serve_connection() {
  Message msg;
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
    MOAT_ASSIGN_OR_RETURN(bool got, receive(conn_.get(), msg));
    if (!got) return ok_status();  // the frontend hung up
    MOAT_TRY(handle(msg));
  }
}

Status Backend::handle(Message& msg) {
  bool replied = false;
  Status st = dispatch(msg, replied);
  // With REPLY_ACK the frontend may ask for a status reply to any request
  // that has none of its own: 0 for success.
  if (!replied && msg.need_reply() && (protocol_features_ & kProtocolReplyAck)) {
    Status ack = send_u64(conn_.get(), msg.header, st.ok() ? 0 : 1);
    if (st.ok() && !ack.ok()) return ack;
  }
  if (!st.ok()) return st.error().wrap(request_name(msg.header.request));
  return ok_status();
}

Status Backend::reply_u64(const Message& msg, std::uint64_t value, bool& replied) {
  replied = true;
  return send_u64(conn_.get(), msg.header, value);
}

Status Backend::dispatch(Message& msg, bool& replied) {
  switch (msg.header.request) {
    case kGetFeatures:
      return reply_u64(msg, kBackendFeatures | device_.features(), replied);
    case kSetFeatures:
      return set_features(msg);
    case kGetProtocolFeatures:
      return reply_u64(msg, protocol_features(), replied);
    case kSetProtocolFeatures:
      return set_protocol_features(msg);
    case kSetOwner:
      return ok_status();
    case kResetOwner:
      return reset_owner();
    case kGetQueueNum:
      return reply_u64(msg, vrings_.size(), replied);
    case kSetMemTable:
      return set_mem_table(msg);
    case kGetConfig:
      if (device_.config().empty()) break;
      replied = true;
      return get_config(msg);
    case kSetVringNum:
      return set_vring_num(msg);
    case kSetVringAddr:
      return set_vring_addr(msg);
    case kSetVringBase:
      return set_vring_base(msg);
    case kGetVringBase:
      replied = true;
      return get_vring_base(msg);
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr:
      return set_vring_fd(msg);
    case kSetVringEnable:
      return set_vring_enable(msg);
    case kSetBackendReqFd:
      // Not offered (BACKEND_REQ): the backend never calls the frontend
      // (no DAX mappings). Close it.
      return ok_status();
    case kSetLogBase:
    case kSetLogFd:
      return make_error("dirty logging (migration) is not supported", ENOTSUP);
    default:
      break;
  }
  return make_error("unsupported request", ENOTSUP);
}

Status Backend::set_features(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint64_t f, msg.as<std::uint64_t>());
  std::uint64_t offered = kBackendFeatures | device_.features();
  if (f & ~offered) return make_error("features 0x" + hex(f & ~offered) + " were not offered", EINVAL);
  // Feature changes apply to rings started afterwards.
  features_ = f;
  return ok_status();
}

Status Backend::set_protocol_features(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint64_t f, msg.as<std::uint64_t>());
  if (f & ~protocol_features()) return make_error("protocol features were not offered", EINVAL);
  protocol_features_ = f;
  return ok_status();
}

// Deprecated, but QEMU still sends it when it stops the device without
// RESET_DEVICE: back to the state after connecting.
Status Backend::reset_owner() {
  stop_all();
  for (auto& v : vrings_) v->reset();
  return ok_status();
}

Status Backend::set_mem_table(Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint32_t n, msg.as<std::uint32_t>());
  if (n == 0 || n > kMaxMemRegions) return make_error(std::to_string(n) + " memory regions", EINVAL);
  if (msg.header.size < kMemTableHeader + n * sizeof(MemRegion))
    return make_error("payload too short for " + std::to_string(n) + " regions", EPROTO);
  std::vector<GuestRegionSpec> specs(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    MemRegion r;
    std::memcpy(&r, msg.payload.data() + kMemTableHeader + i * sizeof r, sizeof r);
    specs[i] = {r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset};
  }
  MOAT_ASSIGN_OR_RETURN(GuestMemory mem, GuestMemory::map(specs, msg.fds));
  // The workers hold pointers into the old mappings: stop them, swap,
  // restart them on the new table (same ring addresses, same positions).
  std::vector<Vring*> was_running;
  for (auto& v : vrings_)
    if (v->running()) {
      was_running.push_back(v.get());
      v->stop();
    }
  memory_ = std::make_unique<GuestMemory>(std::move(mem));
  for (Vring* v : was_running) MOAT_TRY(maybe_start(*v));
  return ok_status();
}

Status Backend::get_config(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto h, msg.as<ConfigHeader>());
  std::span<const std::uint8_t> config = device_.config();
  // 64-bit sum: offset + size cannot wrap.
  if (h.size > kMaxConfigSize || std::uint64_t{h.offset} + h.size > config.size())
    return make_error("config range " + std::to_string(h.offset) + "+" + std::to_string(h.size) +
                          " of " + std::to_string(config.size()) + " bytes",
                      EINVAL);
  std::vector<std::uint8_t> reply(sizeof h + h.size);
  std::memcpy(reply.data(), &h, sizeof h);
  std::memcpy(reply.data() + sizeof h, config.data() + h.offset, h.size);
  return send_reply(conn_.get(), msg.header, reply);
}

Result<Vring*> Backend::vring(std::uint32_t index, std::uint32_t request) {
  if (index >= vrings_.size())
    return make_error(request_name(request) + " for queue " + std::to_string(index) + " of " +
                          std::to_string(vrings_.size()),
                      EINVAL);
  return vrings_[index].get();
}

Status Backend::set_vring_num(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto s, msg.as<VringState>());
  MOAT_ASSIGN_OR_RETURN(Vring * v, vring(s.index, msg.header.request));
  unsigned max = device_.max_queue_size();
  if (s.num == 0 || s.num > max || (s.num & (s.num - 1)))
    return make_error("queue size " + std::to_string(s.num) + " (a power of two up to " +
                          std::to_string(max) + ")",
                      EINVAL);
  v->stop();
  v->num = s.num;
  return maybe_start(*v);
}

Status Backend::set_vring_addr(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto a, msg.as<VringAddr>());
  MOAT_ASSIGN_OR_RETURN(Vring * v, vring(a.index, msg.header.request));
  if (a.flags & 1) return make_error("dirty logging (migration) is not supported", ENOTSUP);
  v->stop();
  v->addr = a;
  v->addr_set = true;
  return maybe_start(*v);
}

Status Backend::set_vring_base(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto s, msg.as<VringState>());
  MOAT_ASSIGN_OR_RETURN(Vring * v, vring(s.index, msg.header.request));
  if (s.num > 0xffff) return make_error("ring base " + std::to_string(s.num), EINVAL);
  v->stop();
  v->base = static_cast<std::uint16_t>(s.num);
  return maybe_start(*v);
}

Status Backend::get_vring_base(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto s, msg.as<VringState>());
  MOAT_ASSIGN_OR_RETURN(Vring * v, vring(s.index, msg.header.request));
  // Stops the ring: the worker leaves `base` at the next avail index, and
  // the ring only starts again with a new SET_VRING_KICK.
  v->stop();
  v->kick.reset();
  VringState reply{s.index, v->base};
  std::uint8_t b[sizeof reply];
  std::memcpy(b, &reply, sizeof b);
  return send_reply(conn_.get(), msg.header, b);
}

Status Backend::set_vring_fd(Message& msg) {
  MOAT_ASSIGN_OR_RETURN(std::uint64_t payload, msg.as<std::uint64_t>());
  if (payload & ~(kVringIndexMask | kVringNoFd)) return make_error("bad payload", EINVAL);
  MOAT_ASSIGN_OR_RETURN(
      Vring * v, vring(static_cast<std::uint32_t>(payload & kVringIndexMask), msg.header.request));
  UniqueFd fd;
  if (!(payload & kVringNoFd)) {
    if (msg.fds.size() != 1) return make_error("expected one fd", EPROTO);
    fd = std::move(msg.fds[0]);
  }
  switch (msg.header.request) {
    case kSetVringKick:
      // Without a kick fd the backend would have to poll the ring.
      if (!fd) return make_error("polling mode (no kick fd) is not supported", ENOTSUP);
      v->stop();
      v->kick = std::move(fd);
      // Without PROTOCOL_FEATURES a ring is enabled as soon as it starts.
      if (!(features_ & kFeatureProtocolFeatures)) v->enabled = true;
      return maybe_start(*v);
    case kSetVringCall:
      v->set_call(std::move(fd));
      return ok_status();
    default:
      // We never report ring errors through it (run() ends instead).
      v->err = std::move(fd);
      return ok_status();
  }
}

Status Backend::set_vring_enable(const Message& msg) {
  MOAT_ASSIGN_OR_RETURN(auto s, msg.as<VringState>());
  MOAT_ASSIGN_OR_RETURN(Vring * v, vring(s.index, msg.header.request));
  if (s.num > 1) return make_error("enable value " + std::to_string(s.num), EINVAL);
  v->enabled = s.num == 1;
  if (!v->enabled) {
    v->stop();
    return ok_status();
  }
  return maybe_start(*v);
}

Status Backend::maybe_start(Vring& v) {
  if (v.running() || !v.ready() || !memory_) return ok_status();
  return v.start(*memory_, features_, device_, [this](Error e) { report(std::move(e)); });
}

void Backend::stop_all() {
  for (auto& v : vrings_) v->stop();
}

void Backend::report(Error e) {
  {
    std::lock_guard lock(error_mu_);
    if (!error_) error_ = std::move(e);
  }
  notify_event_fd(error_fd_.get());
}

}  // namespace moat::vhost_user
