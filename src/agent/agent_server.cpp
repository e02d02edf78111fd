#include "agent/agent_server.h"

#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/guest_memory.h"
#include "agent/listening_ports.h"
#include "agent/shared_filesystems.h"
#include "agent/system_setup.h"
#include "agent/user_db.h"
#include "proto/boot_args.h"
#include "proto/exec.h"
#include "proto/file_ops.h"
#include "proto/frame_peek.h"

namespace moat::agent {
namespace {

constexpr const char* kAgentVersion = "moat-agent/0.1.0";
// Bytes one file stream may queue per loop round, so exec output and other
// streams keep their turn.
constexpr std::size_t kFileProduceBudget = 256 * 1024;
// Bytes read from the channel per loop round, so the processes' output and
// the outgoing streams keep their turn.
constexpr std::size_t kChannelReadBudget = 256 * 1024;
// How long a halt waits for killed processes to be gone before it flushes.
constexpr int kHaltKillWaitMs = 1000;

void set_clock_from(const proto::Json& p) {
  auto ns = proto::get_uint(p, "time_ns", ~0ull);
  if (!ns) return;
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(*ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(*ns % 1000000000ull);
  ::clock_settime(CLOCK_REALTIME, &ts);
}

// A restored guest takes the identity its new host gives it: the hostname
// (a child of a memory snapshot is not its parent), in the kernel and in
// /etc/hostname and /etc/hosts, which its disk holds from the parent's boot;
// and fresh entropy mixed into the kernel's pool with the CRNG reseeded at
// once, so that two guests restored from one state never produce the same
// random bytes. (At boot the files are written before any mount exists, so
// they cannot land in a volume; a restored guest has no volumes.)
void take_identity_from(const proto::Json& p, bool network) {
  if (auto name = proto::get_string(p, "hostname", 64); name && proto::valid_hostname(*name)) {
    ::sethostname(name->data(), name->size());
    write_identity_files(std::string(*name), network);
  }
  auto seed = proto::get_string(p, "entropy", 512);
  if (!seed || seed->empty()) return;
  UniqueFd random(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!random) return;
  struct {
    int entropy_count;
    int buf_size;
    unsigned char buf[512];
  } add{};
  add.buf_size = static_cast<int>(seed->size());
  add.entropy_count = add.buf_size * 8;
  std::memcpy(add.buf, seed->data(), seed->size());
  ::ioctl(random.get(), RNDADDENTROPY, &add);
  ::ioctl(random.get(), RNDRESEEDCRNG);
}

}  // namespace

AgentServer::AgentServer(UniqueFd channel) : channel_(std::move(channel)) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  ::signal(SIGPIPE, SIG_IGN);
  int flags = ::fcntl(channel_.get(), F_GETFL);
  ::fcntl(channel_.get(), F_SETFL, flags | O_NONBLOCK);
}

void AgentServer::send(proto::Message m) { out_.send(m); }

// What the channel does not take now waits for POLLOUT.
void AgentServer::flush_output() { (void)out_.flush(channel_.get()); }

void AgentServer::read_channel() {
  // virtio-serial hands out one of its (page-sized) receive buffers per
  // read, so take what is queued, up to a bound, before going back to poll.
  char buf[64 * 1024];
  for (std::size_t taken = 0; taken < kChannelReadBudget;) {
    ssize_t n = ::read(channel_.get(), buf, sizeof(buf));
    if (n < 0) break;  // EAGAIN/EINTR
    if (n == 0) {
      // No host on the other end right now; do not spin on it.
      channel_eof_ = true;
      break;
    }
    taken += static_cast<std::size_t>(n);
    decoder_.feed(buf, static_cast<std::size_t>(n));
    if (!handle_frames()) return;
  }
}

bool AgentServer::handle_frames() {
  while (true) {
    proto::FramePeek peek = decoder_.peek();
    if (peek.status == proto::PeekStatus::kOversize) {
      send(proto::make_error_message(proto::kControlStream, "frame_too_large",
                                     proto::frame_too_large(peek.header.body_size, proto::kMaxBodySize).message,
                                     false));
      decoder_ = proto::FrameDecoder();
      return false;
    }
    if (peek.status != proto::PeekStatus::kComplete) return true;
    // File data is taken from the decoder's buffer as it is; anything else
    // is copied out and decoded in full.
    auto d = proto::data_fast_path(peek.body);
    if (!d || !files_.on_data(peek.header.stream, *d)) {
      proto::Frame frame{peek.header.stream, peek.header.flags, std::string(peek.body)};
      handle_frame(frame);
    }
    decoder_.consume(peek.frame_size());
  }
}

void AgentServer::handle_frame(const proto::Frame& frame) {
  auto m = proto::decode_message(frame);
  if (!m) {
    send(proto::make_error_message(frame.stream, "bad_message", m.error().message,
                                   frame.stream != proto::kControlStream));
    return;
  }
  if (m->version != proto::kProtocolVersion) {
    send(proto::make_error_message(frame.stream, "bad_version",
                                   "unsupported protocol version " + std::to_string(m->version),
                                   frame.stream != proto::kControlStream));
    return;
  }
  if (m->stream == proto::kControlStream) return handle_control(*m);
  // A quiet agent takes no stream's frames (a correct host sends none).
  if (quiesced_) return;
  if (m->type == proto::msg::kExec) return start_exec(*m);
  if (m->type == proto::msg::kFreeze) return start_freeze(*m);
  if (freezer_.holder() == m->stream) return on_freeze_message(*m);
  if (proto::is_file_request(m->type)) return files_.open(*m);
  if (files_.on_message(*m)) return;
  auto it = sessions_.find(m->stream);
  if (it == sessions_.end()) {
    // Late messages for a stream that just ended are normal; only report
    // ones that could not belong to any stream.
    if (m->type != proto::msg::kWindow && m->type != proto::msg::kStdin &&
        m->type != proto::msg::kCancel && m->type != proto::msg::kStdinClose &&
        m->type != proto::msg::kSignal && m->type != proto::msg::kResize &&
        m->type != proto::msg::kData && m->type != proto::msg::kEnd)
      send(proto::make_error_message(m->stream, "no_stream", "no such stream", true));
    return;
  }
  it->second->on_message(*m);
}

void AgentServer::handle_control(const proto::Message& m) {
  if (m.type == proto::msg::kHello) {
    on_host_hello(m.payload);
  } else if (m.type == proto::msg::kQuiesce) {
    // Everything queued before goes out first; `quiesced` is the last frame.
    quiesced_ = true;
    send(proto::make_message(proto::kControlStream, proto::msg::kQuiesced));
  } else if (m.type == proto::msg::kPing) {
    send(proto::make_message(proto::kControlStream, proto::msg::kPong, m.payload));
  } else if (m.type == proto::msg::kShutdown) {
    shutdown_requested_ = true;
    // Power-off remounts the upper read-only, which would wait on a freeze.
    end_freeze_for_stop();
  } else if (m.type == proto::msg::kHalt) {
    halt(m.payload);
  } else if (m.type == proto::msg::kWatchPorts) {
    on_watch_ports(m.payload);
  } else if (m.type == proto::msg::kStats) {
    GuestMemory mem = read_guest_memory();
    proto::Json p = proto::Json::object();
    p["mem_total_bytes"] = mem.total_bytes;
    p["mem_available_bytes"] = mem.available_bytes;
    send(proto::make_message(proto::kControlStream, proto::msg::kStats, std::move(p)));
  } else {
    send(proto::make_error_message(proto::kControlStream, "unknown_type",
                                   "unknown control message \"" + m.type + "\"", false));
  }
}

void AgentServer::on_host_hello(const proto::Json& payload) {
  set_clock_from(payload);
  quiesced_ = false;
  auto restored = payload.find("restored");
  if (restored == payload.end() || !restored->is_boolean() || !restored->get<bool>()) return;
  take_identity_from(payload, network_);
  end_every_stream();
  proto::Json hello = proto::Json::object();
  hello["version"] = proto::kProtocolVersion;
  hello["agent"] = kAgentVersion;
  hello["restored"] = true;
  send(proto::make_message(proto::kControlStream, proto::msg::kHello, std::move(hello)));
}

void AgentServer::end_freeze_for_stop() {
  if (auto holder = freezer_.holder()) {
    (void)freezer_.thaw();
    send(proto::make_error_message(*holder, "shutting_down", "the sandbox is stopping", true));
  }
}

void AgentServer::halt(const proto::Json& payload) {
  auto sync_all = proto::get_bool(payload, "sync_all");
  if (!sync_all) {
    send(proto::make_error_message(proto::kControlStream, "bad_request", sync_all.error().message, false));
    return;
  }
  // A frozen upper would hold sync() until the freeze's time ran out.
  end_freeze_for_stop();
  // Killed first, so that nothing dirties a page after the flush. Their
  // exits go unreported: the VM ends as soon as `halted` is out.
  kill_all_processes(/*grace_ms=*/0, kHaltKillWaitMs);
  if (*sync_all) {
    ::sync();
  } else if (int failed = sync_shared_filesystems(); failed > 0) {
    console_log("moat-agent: " + std::to_string(failed) + " shared filesystem(s) could not be flushed");
  }
  send(proto::make_message(proto::kControlStream, proto::msg::kHalted));
}

void AgentServer::on_watch_ports(const proto::Json& payload) {
  auto interval = proto::parse_watch_ports(payload);
  if (!interval) {
    send(proto::make_error_message(proto::kControlStream, "bad_request", interval.error().message, false));
    return;
  }
  watch_interval_ = std::chrono::milliseconds(*interval);
  reported_ports_.reset();
  next_port_look_ = Clock::now();  // the first report at once
}

void AgentServer::look_at_ports(Clock::time_point now) {
  if (watch_interval_.count() == 0 || now < next_port_look_) return;
  next_port_look_ = now + watch_interval_;
  proto::PortSet ports = read_listening_ports();
  if (reported_ports_ && *reported_ports_ == ports) return;
  send(proto::make_listening(ports));
  reported_ports_ = std::move(ports);
}

// The commands' processes are killed as a cancel would (a command whose
// client is gone has nobody to read it); processes they started in the
// background live on, as after any cancel.
void AgentServer::end_every_stream() {
  for (auto& [id, s] : sessions_) s->cancel();
  sessions_.clear();
  pid_streams_.clear();
  files_.end_all();
  if (freezer_.holder()) (void)freezer_.thaw();
}

void AgentServer::start_exec(const proto::Message& m) {
  if (sessions_.count(m.stream)) {
    send(proto::make_error_message(m.stream, "stream_in_use", "stream id already in use", false));
    return;
  }
  if (sessions_.size() >= kMaxSessions) {
    send(proto::make_error_message(m.stream, "too_many_streams", "too many concurrent execs", true));
    return;
  }
  if (pending_setup_ > 0) {
    // Boot set-up (the loopback interface) finishes before anything runs.
    while (::waitpid(pending_setup_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pending_setup_ = -1;
  }
  auto req = proto::parse_exec_request(m.payload);
  if (!req) {
    send(proto::make_error_message(m.stream, "bad_request", req.error().message, true));
    return;
  }
  auto cred = resolve_user(req->user);
  if (!cred) {
    send(proto::make_error_message(m.stream, "bad_user", cred.error().message, true));
    return;
  }
  if (!req->cwd.empty()) {
    struct stat st {};
    if (::stat(req->cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      send(proto::make_error_message(m.stream, "bad_cwd",
                                     "working directory " + req->cwd + " does not exist", true));
      return;
    }
  }
  auto proc = spawn_process(*req, *cred);
  if (!proc) {
    send(proto::make_error_message(m.stream, "spawn_failed", proc.error().message, true));
    return;
  }
  pid_t pid = proc->pid;
  auto session = std::make_unique<ExecSession>(m.stream, std::move(*proc), *req, out_);
  pid_streams_[pid] = m.stream;
  sessions_[m.stream] = std::move(session);
}

void AgentServer::start_freeze(const proto::Message& m) {
  if (sessions_.count(m.stream) || freezer_.holder() == m.stream) {
    send(proto::make_error_message(m.stream, "stream_in_use", "stream id already in use", false));
    return;
  }
  auto limit = proto::get_uint(m.payload, "timeout_ms", proto::kMaxFreezeMs);
  if (!limit || *limit == 0) {
    send(proto::make_error_message(m.stream, "bad_request",
                                   "freeze needs timeout_ms between 1 and " + std::to_string(proto::kMaxFreezeMs),
                                   true));
    return;
  }
  auto st = freezer_.freeze(upper_filesystem_handle(), m.stream, std::chrono::milliseconds(*limit));
  if (!st) {
    const char* code = st.error().code == EBUSY ? "busy" : st.error().code == ENODEV ? "no_upper" : "freeze_failed";
    send(proto::make_error_message(m.stream, code, st.error().message, true));
    return;
  }
  send(proto::make_message(m.stream, proto::msg::kFrozen));
}

void AgentServer::on_freeze_message(const proto::Message& m) {
  if (m.type != proto::msg::kThaw && m.type != proto::msg::kCancel) return;
  auto held = freezer_.thaw();
  if (m.type == proto::msg::kCancel) return;  // nobody to answer
  if (!held) {
    send(proto::make_error_message(m.stream, "thaw_failed", held.error().message, true));
    return;
  }
  proto::Json p = proto::Json::object();
  p["held"] = *held;
  send(proto::make_message(m.stream, proto::msg::kThawed, std::move(p), proto::kFlagEndStream));
}

void AgentServer::reap_children() {
  struct signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
  }
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == pending_setup_) pending_setup_ = -1;
    if (freezer_.owns(pid)) freezer_.on_reaped();
    auto it = pid_streams_.find(pid);
    if (it == pid_streams_.end()) continue;  // an orphan re-parented to us
    auto s = sessions_.find(it->second);
    if (s != sessions_.end() && s->second->pid() == pid) s->second->on_reaped(status);
    pid_streams_.erase(it);
  }
}

void AgentServer::drop_finished_sessions() {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->finished()) {
      // A cancelled process may still be unreaped; forget its pid mapping
      // only for this stream so a reused stream id is not confused.
      for (auto p = pid_streams_.begin(); p != pid_streams_.end();) {
        if (p->second == it->first) p = pid_streams_.erase(p);
        else ++p;
      }
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void AgentServer::run() {
  proto::Json hello = proto::Json::object();
  hello["version"] = proto::kProtocolVersion;
  hello["agent"] = kAgentVersion;
  send(proto::make_message(proto::kControlStream, proto::msg::kHello, std::move(hello)));

  std::vector<pollfd> fds;
  while (!shutdown_requested_) {
    flush_output();
    fds.clear();
    short channel_events = 0;
    // Stop taking requests while a lot of output is queued for the host.
    if (!channel_eof_ && out_.size() < (8u << 20)) channel_events |= POLLIN;
    if (!out_.empty()) channel_events |= POLLOUT;
    fds.push_back({channel_.get(), channel_events, 0});
    // While quiet (proto/message.h: quiesce) nothing runs that could send:
    // no reaping (an exit would be reported), no output, no file data, no
    // timers. A child's SIGCHLD waits in the signalfd until the quiet ends.
    bool producing = !quiesced_ && out_.size() < (8u << 20);
    fds.push_back({signal_fd_.get(), static_cast<short>(quiesced_ ? 0 : POLLIN), 0});
    std::size_t fixed = fds.size();
    if (producing)
      for (auto& [id, s] : sessions_) s->add_poll_fds(fds);

    int timeout_ms = channel_eof_ ? 100 : -1;
    // File streams with window left produce without waiting for an fd.
    bool file_work = producing && files_.wants_to_produce();
    if (file_work) timeout_ms = 0;
    auto now = Clock::now();
    auto wake_by = [&](Clock::time_point deadline) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
      if (ms < 0) ms = 0;
      if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = static_cast<int>(ms);
    };
    if (watch_interval_.count() && !quiesced_) wake_by(next_port_look_);
    for (auto& [id, s] : sessions_) {
      if (quiesced_) break;
      if (auto d = s->next_deadline()) wake_by(*d);
    }
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      console_log("moat-agent: poll failed");
      continue;
    }
    channel_eof_ = false;
    if (fds[0].revents & POLLIN) read_channel();
    if (fds[0].revents & POLLOUT) flush_output();
    if (quiesced_) continue;  // (a quiesce read just now included)
    if (fds[1].revents & POLLIN) reap_children();
    for (std::size_t i = fixed; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      for (auto& [id, s] : sessions_) s->on_poll(fds[i].fd, fds[i].revents);
    }
    if (out_.size() < (8u << 20)) files_.produce(kFileProduceBudget);
    now = Clock::now();
    for (auto& [id, s] : sessions_) s->on_timer(now);
    look_at_ports(now);
    drop_finished_sessions();
  }
  flush_output();
}

}  // namespace moat::agent
