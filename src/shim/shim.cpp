#include "shim/shim.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "proto/exec.h"
#include "proto/exec_log.h"
#include "proto/file_ops.h"
#include "proto/frame_peek.h"
#include "proto/port_watch.h"
#include "proto/text.h"
#include "shim/sandbox_stats.h"
#include "shim/syscall_lists.h"
#include "shim_contract/stats_json.h"
#include "store/moat_home.h"
#include "util/write_file_atomic.h"
#include "vm/host_tsc.h"

namespace moat::shim {
namespace {

// Past this much output queued for one client, the shim stops reading the
// agent until the client catches up: a hostile guest or a stuck client can
// not make the shim buffer without bound.
constexpr std::size_t kMaxClientBacklog = 16u << 20;
constexpr std::size_t kMaxAgentBacklog = 16u << 20;
// Why a sandbox whose starter died before it was ready is stopped.
constexpr const char* kStarterGone = "its start was abandoned: the command that started it went away";
// A sandbox that stops when its owner leaves (`moat run`) also stops when no
// owner ever comes: its starter died between the verdict and connecting.
constexpr std::chrono::seconds kOwnerWait{30};

// The order in which the handlers of one wake-up run (event_loop.h): output
// is saved first so that QEMU's last words are on disk when its exit is
// judged, QEMU's exit and a dead starter end the wake-up before any channel
// is served, and clients come after the agent they talk to.
enum DispatchOrder : int {
  kOutputFirst = 0,
  kStarterPipe = 1,
  kQemuExit = 2,
  kSignals = 3,
  kListener = 4,
  kAgentChannel = 5,
  kMonitor = 6,
  kClientChannel = 7,
};

constexpr EventLoop::Events kReadableOrGone = EventLoop::kReadable | EventLoop::kHangup | EventLoop::kError;

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Console text from the guest, made safe to show in a terminal and to store:
// control characters other than newline become '?', invalid UTF-8 U+FFFD.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) out += (static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == 0x7f ? '?' : c;
  return proto::lossy_utf8(out);
}

// The last `n` lines of `text`.
std::string_view last_lines(std::string_view text, int n) {
  std::size_t pos = text.size();
  while (n-- > 0 && pos > 0) {
    std::size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string_view::npos) return text;
    pos = nl;
  }
  return pos == 0 ? text : text.substr(pos + 1);
}

// How much of the console is searched for a panic, and how much of it the
// reason keeps: the panic line and up to ten lines before it.
constexpr std::size_t kPanicScanBytes = 16384;
constexpr std::size_t kMaxPanicLine = 200;
constexpr int kPanicContextLines = 10;
constexpr std::size_t kMaxPanicContext = 1024;

// "the guest kernel panicked: <its panic line>\nconsole:\n<the lines before
// it>" if the console's tail holds a kernel panic, else empty. The guest can
// print anything there, so at worst it makes its own power-off read as a
// crash; the text is bounded and defused.
std::string guest_panic_reason(const std::string& console) {
  static constexpr std::string_view kMarker = "Kernel panic - not syncing:";
  std::size_t at = console.find(kMarker);
  if (at == std::string::npos) return "";
  std::size_t line_end = console.find('\n', at);
  std::string line = console.substr(at, std::min<std::size_t>(line_end == std::string::npos ? console.size() - at
                                                                                              : line_end - at,
                                                                 kMaxPanicLine));
  std::size_t line_start = console.rfind('\n', at);
  std::string_view before(console.data(), line_start == std::string::npos ? 0 : line_start);
  std::string_view tail = last_lines(before, kPanicContextLines);
  if (tail.size() > kMaxPanicContext) tail = tail.substr(tail.size() - kMaxPanicContext);
  return "the guest kernel panicked: " + printable(line) + "\nconsole:\n" + printable(tail);
}

std::uint64_t realtime_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A poll timeout for a deadline: the milliseconds left, rounded up so that
// the wake-up is not before it, 0 when it is past.
int ms_until(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left + 1, 1 << 30));
}

// The sooner of two poll timeouts, where -1 is none.
int sooner(int timeout, int other) { return timeout < 0 ? other : std::min(timeout, other); }

}  // namespace

Shim::Shim(ShimConfig cfg) : cfg_(std::move(cfg)), log_("moat-shim[" + cfg_.sandbox_id + "]: ") {}

void Shim::log(const std::string& line) { log_.line(line); }

Status Shim::take_lock() {
  std::string path = shim_lock_path(cfg_.dir);
  lock_fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) return errno_error("open " + path);
  // Checkers (reconcile, stop) take the lock shared for an instant; a
  // holder that stays is another shim.
  for (int attempt = 0; ::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0; ++attempt) {
    if (errno != EWOULDBLOCK) return errno_error("lock " + path);
    if (attempt == 50) return make_error("another shim already runs sandbox " + cfg_.sandbox_id);
    struct timespec ts {0, 2 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  return ok_status();
}

void Shim::finish(bool clean, const std::string& reason) {
  if (!exit_) exit_ = ShimExit{clean, reason};
}

// The exec history (`moat logs`): one JSON line when a command starts and one
// when it ends (proto/exec_log.h). Best effort: a full disk must not stop the
// relay, and no client or guest text can make writing it fail.
void Shim::note_exec(std::uint32_t guest_stream, const proto::Message& exec) {
  ++execs_started_;
  exec_log_.write(proto::exec_log_start(realtime_ns() / 1000000000ull, guest_stream, exec.payload) + "\n");
}

void Shim::note_stream_end(const proto::Frame& f) {
  auto m = proto::decode_message(f);
  if (!m) return;
  if (auto line = proto::exec_log_end(realtime_ns() / 1000000000ull, f.stream, *m)) exec_log_.write(*line + "\n");
}

std::string Shim::console_tail(std::size_t max_bytes) const {
  return capped_log_tail(console_log_path(cfg_.dir), max_bytes);
}

std::string Shim::qemu_log_tail(std::size_t max_bytes) const {
  return capped_log_tail(qemu_log_path(cfg_.dir), max_bytes);
}

// The pump closes its descriptor once the writer has gone; the loop then
// stops watching that number before anything can reuse it.
void Shim::pump_output(OutputPump& pump) {
  int fd = pump.fd();
  pump.pump();
  if (fd >= 0 && pump.fd() < 0) loop_.remove(fd);
}

// QEMU has exited or is about to be judged: what it and the guest wrote last
// must be in the files before their tails are read.
void Shim::drain_outputs() {
  for (OutputPump* pump : {&console_, &qemu_output_}) {
    int fd = pump->fd();
    pump->drain();
    if (fd >= 0 && pump->fd() < 0) loop_.remove(fd);
  }
}

// Both outputs are watched from the boot until the shim ends.
Status Shim::watch_outputs() {
  for (OutputPump* pump : {&console_, &qemu_output_}) {
    if (pump->fd() < 0) continue;
    MOAT_TRY(loop_.add(
        pump->fd(), EventLoop::kReadable,
        [this, pump](EventLoop::Events ev) {
          if (ev & kReadableOrGone) pump_output(*pump);
        },
        kOutputFirst));
  }
  return ok_status();
}

Status Shim::prepare() {
  remove_unfinished_save();
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  ::signal(SIGPIPE, SIG_IGN);

  std::string sock_path = control_socket_path(cfg_.dir);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (sock_path.size() >= sizeof(addr.sun_path))
    return make_error("control socket path too long (" + std::to_string(sock_path.size()) +
                      " bytes): " + sock_path + "; use a shorter $MOAT_HOME");
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path.c_str());
  listen_fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_fd_) return errno_error("socket");
  ::unlink(sock_path.c_str());
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return errno_error("bind " + sock_path);
  ::chmod(sock_path.c_str(), 0600);
  if (::listen(listen_fd_.get(), 64) != 0) return errno_error("listen " + sock_path);
  spare_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  MOAT_ASSIGN_OR_RETURN(loop_, EventLoop::create());
  return ok_status();
}

// The console and QEMU's output reach the host's disk only through the shim,
// capped (output_pump.h). Both files hold the current boot only.
Status Shim::open_outputs(UniqueFd& console_qemu_end, UniqueFd& output_qemu_end) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return errno_error("socketpair");
  UniqueFd console_shim_end(pair[0]);
  console_qemu_end.reset(pair[1]);
  // The shim never writes to the console, but keeps the direction open: QEMU
  // would take an end-of-file as a disconnect and drop later output.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd output_shim_end(pipe_fds[0]);
  output_qemu_end.reset(pipe_fds[1]);
  MOAT_ASSIGN_OR_RETURN(auto console_log, CappedLog::open(console_log_path(cfg_.dir), cfg_.log_max_bytes,
                                                          CappedLog::Start::kFresh));
  MOAT_ASSIGN_OR_RETURN(auto qemu_log, CappedLog::open(qemu_log_path(cfg_.dir), cfg_.log_max_bytes,
                                                       CappedLog::Start::kFresh));
  console_ = OutputPump(std::move(console_shim_end), std::move(console_log));
  qemu_output_ = OutputPump(std::move(output_shim_end), std::move(qemu_log));
  return ok_status();
}

Status Shim::boot() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return errno_error("socketpair");
  agent_fd_.reset(pair[0]);
  UniqueFd qemu_end(pair[1]);
  UniqueFd console_qemu_end, output_qemu_end;
  MOAT_TRY(open_outputs(console_qemu_end, output_qemu_end));
  // QEMU opens nothing by name but its kernel and initramfs: every other
  // channel is a descriptor it inherits at a fixed number.
  std::vector<InheritedFd> inherit;
  auto pass = [&inherit](int fd) {
    int target = 3 + static_cast<int>(inherit.size());
    inherit.push_back({fd, target});
    return target;
  };
  cfg_.vm.agent_fd = pass(qemu_end.get());
  cfg_.vm.console_fd = pass(console_qemu_end.get());
  std::vector<VolumeServers::QemuEnd> volume_ends;
  // First, while the shim has a single thread: each server is a fork.
  MOAT_ASSIGN_OR_RETURN(volumes_, VolumeServers::start(cfg_.volumes, cfg_.dir, volume_ends,
                                                       [this](const std::string& line) { log(line); }));
  if (!cfg_.volumes.empty()) log(volumes_->confinement());
  cfg_.vm.fs_shares.clear();
  for (const auto& end : volume_ends) cfg_.vm.fs_shares.push_back({end.tag, pass(end.fd.get())});
  UniqueFd net_qemu_end;
  MOAT_TRY(start_network(net_qemu_end));
  cfg_.vm.net_fd = net_qemu_end ? pass(net_qemu_end.get()) : -1;
  int monitor_pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, monitor_pair) != 0) return errno_error("socketpair");
  UniqueFd monitor_qemu_end(monitor_pair[1]);
  monitor_ = QmpChannel(UniqueFd(monitor_pair[0]));
  monitor_.on_event([this](const std::string& name, const proto::Json& data) {
    if (name != "MIGRATION" || !data.is_object()) return;
    auto status = data.find("status");
    if (status != data.end() && status->is_string()) on_migration_status(status->get<std::string>());
  });
  cfg_.vm.qmp_fd = pass(monitor_qemu_end.get());
  // A saved state to restore: QEMU reads it from a descriptor it inherits.
  UniqueFd state_fd;
  int state_fd_number = -1;
  if (!cfg_.restore_from.empty()) {
    state_fd.reset(::open(cfg_.restore_from.c_str(), O_RDONLY | O_CLOEXEC));
    if (!state_fd) return errno_error("the saved state " + cfg_.restore_from);
    state_fd_number = pass(state_fd.get());
    cfg_.vm.incoming = true;
  }
  if (Status ram = prepare_guest_ram(); !ram) {
    if (cfg_.restore_from.empty()) return ram;
    return ram.error().wrap("restoring the saved state (kept; `moat stop` discards it so that the sandbox boots afresh)");
  }
  if (guest_ram_) cfg_.vm.ram_fd = pass(guest_ram_.get());
  std::vector<UniqueFd> disk_fds;
  auto open_disk = [&](const std::string& path, int flags) -> Result<int> {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return errno_error("the sandbox's disk " + path);
    disk_fds.emplace_back(fd);
    return pass(fd);
  };
  for (auto& disk : cfg_.vm.disks) {
    MOAT_ASSIGN_OR_RETURN(disk.fd, open_disk(disk.path, disk.read_only ? O_RDONLY : O_RDWR));
    if (!disk.read_only) {
      MOAT_ASSIGN_OR_RETURN(disk.read_only_fd, open_disk(disk.path, O_RDONLY));
    }
  }
  MOAT_ASSIGN_OR_RETURN(std::string qemu_binary, resolve_qemu_binary(cfg_.vm.qemu));
  cfg_.vm.qemu = qemu_binary;
  cfg_.vm.name = cfg_.dir;
  // Under TCG the guest's TSC is the host's, whose rate the guest is then
  // told rather than left to measure (vm/host_tsc.h).
  if (cfg_.vm.accel == vm::Accel::kTcg) cfg_.vm.tsc_khz = vm::host_tsc_khz();
  MOAT_ASSIGN_OR_RETURN(qemu_jail_, prepare_qemu_jail(cfg_.dir, qemu_binary, cfg_.vm));
  if (qemu_jail_.cgroup) {
    log("QEMU's " + jail::describe(qemu_jail_.cgroup->version()) + " group: " + qemu_jail_.cgroup->paths()[0]);
  } else {
    log("warning: QEMU runs without a cgroup of its own, so its memory, tasks and CPU are not limited: " +
        qemu_jail_.cgroup_missing);
  }
  if (!qemu_jail_.unjailed.empty()) log(qemu_jail_.unjailed);
  auto argv = vm::build_qemu_command(cfg_.vm);
  {
    std::ofstream cmd(qemu_cmdline_path(cfg_.dir));
    for (const auto& a : argv) cmd << a << "\n";
  }
  MOAT_ASSIGN_OR_RETURN(auto q, QemuProcess::start(argv, inherit, output_qemu_end.get(), qemu_jail_.child(),
                                                   vm::qemu_environment(cfg_.vm)));
  qemu_ = std::move(q);
  vm_started_at_ = Clock::now();
  qemu_end.reset();
  net_qemu_end.reset();
  monitor_qemu_end.reset();
  console_qemu_end.reset();
  output_qemu_end.reset();
  set_nonblocking(agent_fd_.get());

  MOAT_TRY(watch_outputs());
  std::optional<Status> verdict;
  if (state_fd_number >= 0) {
    if (Status started = start_restore(state_fd_number); !started) verdict = std::move(started);
  }
  if (Status watching = watch_boot_channels(verdict); !watching) verdict = std::move(watching);
  auto deadline = Clock::now() + std::chrono::milliseconds(cfg_.boot_timeout_ms);
  while (!verdict) {
    if (restoring_) monitor_.on_writable();  // a few small commands: the socket takes them
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      qemu_->signal(SIGKILL);
      pump_output(console_);
      std::string tail = console_tail(3000);
      verdict = make_error("the guest did not answer within " + std::to_string(cfg_.boot_timeout_ms / 1000) +
                           " s" + (tail.empty() ? std::string(" (console is empty)") : "; console tail:\n" + tail));
      break;
    }
    if (auto ran = loop_.run_once(static_cast<int>(left)); !ran) verdict = Status(ran.error().wrap("during boot"));
  }
  unwatch_boot_channels();
  state_fd.reset();
  if (restoring_ && !*verdict && cfg_.keep_dir_if_restore_fails) {
    // A warm start's template: the library boots the sandbox afresh in this
    // directory.
    cfg_.remove_dir_on_exit = false;
    verdict = Status(verdict->error().wrap("restoring the warm-start template"));
  } else if (restoring_ && !*verdict) {
    verdict = Status(verdict->error().wrap(
        "restoring the state saved by pause --to-disk (kept; `moat stop` discards it so that the sandbox boots "
        "afresh)"));
  }
  if (restoring_ && *verdict) {
    // The guest runs from the state now: a later start boots afresh. QEMU
    // keeps its mapping of a RAM file; the name is not needed any more.
    ::unlink(cfg_.restore_from.c_str());
    if (!cfg_.restore_ram.empty()) ::unlink(cfg_.restore_ram.c_str());
    auto ms_at = [this](Clock::time_point t) {
      return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(t - vm_started_at_).count());
    };
    log("restored from " + cfg_.restore_from + " in " + ms_at(Clock::now()) + " ms (state read at " +
        ms_at(restoring_->loaded) + " ms, vCPUs running at " + ms_at(restoring_->running) + " ms)");
  }
  restoring_.reset();
  return std::move(*verdict);
}

// What the boot waits on besides the outputs: the agent's hello, QEMU dying
// first, and the verdict pipe. The pipe is watched with no events asked
// (an error comes anyway): nobody would ever learn of a sandbox whose
// starter died. A handler that reaches a verdict ends the wake-up.
Status Shim::watch_boot_channels(std::optional<Status>& verdict) {
  if (ready_fd_ >= 0) {
    MOAT_TRY(loop_.add(
        ready_fd_, 0,
        [this, &verdict](EventLoop::Events ev) {
          if (!(ev & (EventLoop::kError | EventLoop::kHangup))) return;
          qemu_->signal(SIGKILL);
          verdict = make_error(kStarterGone, ECANCELED);
          loop_.stop_dispatch();
        },
        kStarterPipe));
  }
  MOAT_TRY(loop_.add(
      qemu_->pidfd(), EventLoop::kReadable,
      [this, &verdict](EventLoop::Events ev) {
        if (!(ev & EventLoop::kReadable)) return;
        verdict = qemu_exited_during_boot();
        loop_.stop_dispatch();
      },
      kQemuExit));
  MOAT_TRY(loop_.add(
      agent_fd_.get(), EventLoop::kReadable,
      [this, &verdict](EventLoop::Events ev) {
        if (!(ev & (EventLoop::kReadable | EventLoop::kHangup))) return;
        if ((verdict = read_agent_hello())) loop_.stop_dispatch();
      },
      kAgentChannel));
  if (restoring_) {
    // A restore goes through the monitor: QEMU's `completed`, then `cont`,
    // then the agent's hello in answer to the shim's.
    MOAT_TRY(loop_.add(
        monitor_.fd(), EventLoop::kReadable,
        [this, &verdict](EventLoop::Events ev) {
          if (ev & kReadableOrGone) monitor_.on_readable();
          if (monitor_.broken() && restoring_->failure.empty())
            restoring_->failure = "QEMU's monitor closed during the restore";
          if (restoring_->completed && !restoring_->continued) {
            restoring_->continued = true;
            monitor_.execute("cont", [this](Result<proto::Json> done) {
              if (!restoring_) return;
              if (!done) {
                restoring_->failure = "QEMU could not run the restored guest: " + done.error().message;
                return;
              }
              restoring_->running = Clock::now();
              send_host_hello(/*restored=*/true);
              flush_agent();
            });
          }
          if (!restoring_->failure.empty()) {
            // QEMU writes why before it reports the failure.
            drain_outputs();
            std::string said = qemu_log_tail(2000);
            verdict = make_error(restoring_->failure + (said.empty() ? "" : "; QEMU said:\n" + said));
            loop_.stop_dispatch();
          }
        },
        kMonitor));
  }
  return ok_status();
}

// The verdict pipe is closed once the verdict is sent, and serve() watches
// the agent and QEMU's exit with handlers of its own.
void Shim::unwatch_boot_channels() {
  if (restoring_) loop_.remove(monitor_.fd());
  if (ready_fd_ >= 0) loop_.remove(ready_fd_);
  if (qemu_) loop_.remove(qemu_->pidfd());
  loop_.remove(agent_fd_.get());
}

Status Shim::qemu_exited_during_boot() {
  qemu_->reap();
  drain_outputs();
  std::string err = qemu_log_tail(3000);
  std::string con = console_tail(3000);
  std::string msg = "QEMU " + qemu_->describe_exit() + " before the guest was ready";
  if (!err.empty()) msg += "; QEMU said:\n" + err;
  if (!con.empty()) msg += "\nconsole tail:\n" + con;
  return make_error(msg);
}

// During the boot only the agent's hello matters; other frames are skipped.
// Returns the boot's verdict once there is one.
std::optional<Status> Shim::read_agent_hello() {
  char buf[65536];
  ssize_t r = ::read(agent_fd_.get(), buf, sizeof(buf));
  if (r > 0) agent_decoder_.feed(buf, static_cast<std::size_t>(r));
  proto::Frame f;
  while (true) {
    auto got = agent_decoder_.next(f);
    if (!got) return Status(got.error().wrap("agent channel"));
    if (!*got) return std::nullopt;
    auto m = proto::decode_message(f);
    if (m && f.stream == proto::kControlStream && m->type == proto::msg::kHello) {
      agent_hello_ = m->payload;
      proto::Json hello = proto::Json::object();
      hello["version"] = proto::kProtocolVersion;
      hello["time_ns"] = realtime_ns();
      send_to_agent(proto::make_message(proto::kControlStream, proto::msg::kHello, hello));
      send_port_watch(/*restored=*/false);
      flush_agent();
      return ok_status();
    }
  }
}

// Nothing goes to a quiet agent (memory_save.cpp): what a client asks
// meanwhile is refused or dropped before it gets here.
void Shim::send_to_agent(const proto::Message& m) {
  if (agent_quiet_) return;
  proto::encode_message(m, agent_out_);
}

void Shim::send_to_client(Client& c, const proto::Message& m) { proto::encode_message(m, c.out); }

void Shim::flush_agent() {
  while (!agent_out_.empty()) {
    ssize_t n = ::write(agent_fd_.get(), agent_out_.data(), agent_out_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    agent_out_.erase(0, static_cast<std::size_t>(n));
  }
}

void Shim::flush_client(Client& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      c.out.clear();
      c.closing = true;
      return;
    }
    c.out.erase(0, static_cast<std::size_t>(n));
  }
}

void Shim::accept_clients() {
  while (true) {
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && errno == EINTR) continue;
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
      refuse_client();
      return;
    }
    if (fd < 0) return;
    auto c = std::make_unique<Client>();
    c->id = next_client_++;
    c->fd.reset(fd);
    // Interest is set before each wait (update_interest).
    ClientId id = c->id;
    if (auto watched = loop_.add(
            fd, EventLoop::kReadable, [this, id](EventLoop::Events ev) { on_client_events(id, ev); }, kClientChannel);
        !watched) {
      log("cannot watch a client: " + watched.error().message);
      continue;  // the connection closes with `c`
    }
    if (!owner_assigned_) {
      c->owner = true;
      owner_assigned_ = true;
    }
    clients_[c->id] = std::move(c);
  }
}

// Out of descriptors, the pending connection would stay in the backlog and
// the event loop would report it again at once: a busy loop. The spare descriptor is
// given up for a moment to take the connection and close it, so the client
// sees the refusal and the loop sleeps again.
void Shim::refuse_client() {
  spare_fd_.reset();
  int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) ::close(fd);
  spare_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto now = Clock::now();
  if (now - last_refusal_log_ >= std::chrono::seconds(10)) {
    log("out of file descriptors: refused a client");
    last_refusal_log_ = now;
  }
}

void Shim::read_client(Client& c) {
  char buf[65536];
  ssize_t n = ::read(c.fd.get(), buf, sizeof(buf));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    c.closing = true;
    c.out.clear();
    return;
  }
  c.decoder.feed(buf, static_cast<std::size_t>(n));
  while (!c.closing) {
    proto::FramePeek frame = c.decoder.peek();
    if (frame.status == proto::PeekStatus::kOversize) {
      // Cannot resynchronise after an oversized frame: say why and hang up.
      send_to_client(c, proto::make_error_message(
                            proto::kControlStream, "frame_too_large",
                            proto::frame_too_large(frame.header.body_size, c.decoder.max_body()).message, false));
      c.closing = true;
      return;
    }
    if (frame.status != proto::PeekStatus::kComplete) return;
    // The body is a view into the decoder: it is consumed only once handled.
    handle_client_frame(c, frame.header, frame.body);
    c.decoder.consume(frame.frame_size());
  }
}

// Frames of a command's streams (stdin above all) are only relayed: their
// version and type are peeked from the body without building the payload.
// Control messages and exec requests (whose payload is used here), and any
// body the peek does not vouch for, are decoded in full; the full decoder
// also words the error for a bad one.
void Shim::handle_client_frame(Client& c, const proto::FrameHeader& h, std::string_view body) {
  std::optional<proto::MessageEnvelope> envelope;
  if (h.stream != proto::kControlStream) {
    envelope = proto::peek_message_envelope(body);
    if (envelope && envelope->type == proto::msg::kExec) envelope.reset();
  }
  if (envelope) {
    if (envelope->version != proto::kProtocolVersion) return refuse_version(c, h.stream);
    return relay_to_agent(c, h, body, envelope->type, nullptr);
  }
  proto::Frame f;
  f.stream = h.stream;
  f.flags = h.flags;
  f.body.assign(body);
  auto m = proto::decode_message(f);
  if (!m) {
    send_to_client(c, proto::make_error_message(f.stream, "bad_message", m.error().message,
                                                f.stream != proto::kControlStream));
    return;
  }
  if (m->version != proto::kProtocolVersion) return refuse_version(c, h.stream);
  if (h.stream == proto::kControlStream) return handle_client_control(c, *m);
  relay_to_agent(c, h, body, m->type, &*m);
}

void Shim::refuse_version(Client& c, std::uint32_t stream) {
  send_to_client(c, proto::make_error_message(stream, "bad_version",
                                              "this sandbox speaks protocol version " +
                                                  std::to_string(proto::kProtocolVersion),
                                              stream != proto::kControlStream));
}

// `decoded` is the whole message when it was decoded (always for an exec,
// whose request goes to the exec history), else null.
void Shim::relay_to_agent(Client& c, const proto::FrameHeader& h, std::string_view body, std::string_view type,
                          const proto::Message* decoded) {
  if (stopping_) {
    send_to_client(c, proto::make_error_message(h.stream, "stopping", "the sandbox is stopping", true));
    return;
  }
  // Only an exec, a file request or a freeze opens a stream. Anything else for a
  // stream the router does not know is a late frame of one that already
  // ended (a window grant racing the exit, say) and is dropped.
  std::optional<std::uint32_t> guest;
  bool opens_stream = type == proto::msg::kExec || proto::is_file_request(type) || type == proto::msg::kFreeze;
  if (opens_stream && (saving_ || paused_)) {
    send_to_client(c, proto::make_error_message(h.stream, "EBUSY",
                                                saving_ ? "the sandbox is being saved"
                                                        : "the sandbox is paused; resume it to run commands or use "
                                                          "its files",
                                                true));
    return;
  }
  // Nothing reaches a quiet agent, nor an agent being saved (memory_save.cpp):
  // the frames of open streams are dropped, those streams end with the save.
  if (saving_ || agent_quiet_) return;
  if (opens_stream) {
    guest = router_.to_guest(c.id, h.stream);
  } else {
    guest = router_.find_guest(c.id, h.stream);
    if (!guest) return;
  }
  if (!guest) {
    send_to_client(c, proto::make_error_message(h.stream, "too_many_streams",
                                                "too many concurrent streams on one connection", true));
    return;
  }
  if (type == proto::msg::kExec && decoded) note_exec(*guest, *decoded);
  proto::encode_frame(*guest, h.flags, body, agent_out_);
  if (type == proto::msg::kCancel) router_.end_guest_stream(*guest);
}

void Shim::handle_client_control(Client& c, const proto::Message& m) {
  if (m.type == proto::msg::kHello) {
    proto::Json p = proto::Json::object();
    p["version"] = proto::kProtocolVersion;
    p["sandbox"] = cfg_.sandbox_id;
    auto agent = proto::get_string(agent_hello_, "agent", 256);  // the guest's word
    p["agent"] = proto::text_value(agent ? *agent : "");
    send_to_client(c, proto::make_message(proto::kControlStream, proto::msg::kHello, p));
  } else if (m.type == proto::msg::kPing) {
    send_to_client(c, proto::make_message(proto::kControlStream, proto::msg::kPong, m.payload));
  } else if (m.type == proto::msg::kStop) {
    if (auto t = proto::get_uint(m.payload, "timeout_ms", 3600 * 1000); t)
      cfg_.stop_timeout_ms = static_cast<int>(*t);
    // The sandbox is being removed: its disk needs no flush.
    if (auto discard = proto::get_bool(m.payload, "discard_disk"); discard && *discard) cfg_.discard_on_stop = true;
    begin_stop("stop requested by a client");
  } else if (m.type == proto::msg::kNetworkUpdate) {
    handle_network_update(c, m);
  } else if (m.type == proto::msg::kStats) {
    ask_guest_for_stats(c);
  } else if (m.type == proto::msg::kPause && proto::has(m.payload, "to_file")) {
    auto absolute = [](const Result<std::string>& p) { return p && !p->empty() && (*p)[0] == '/'; };
    auto path = proto::get_string(m.payload, "to_file", 4096);
    auto ram = proto::has(m.payload, "ram_file") ? proto::get_string(m.payload, "ram_file", 4096)
                                                 : Result<std::string>(std::string());
    if (!absolute(path) || !ram || (!ram->empty() && !absolute(ram)))
      send_to_client(c, proto::make_error_message(proto::kControlStream, "EINVAL",
                                                  "to_file and ram_file must be absolute paths", false));
    else {
      auto lease = proto::get_bool(m.payload, "resume_on_leave");  // absent: no lease
      save_to_disk(c, *path, /*end_after=*/false, *ram, /*resume_on_leave=*/lease && *lease);
    }
  } else if (m.type == proto::msg::kPause && proto::has(m.payload, "to_disk")) {
    auto to_disk = proto::get_bool(m.payload, "to_disk");
    if (!to_disk)
      send_to_client(c, proto::make_error_message(proto::kControlStream, "EINVAL", to_disk.error().message, false));
    else if (*to_disk)
      save_to_disk(c, memory_state_path(cfg_.dir), /*end_after=*/true, memory_ram_path(cfg_.dir));
    else
      set_paused(c, true);
  } else if (m.type == proto::msg::kPause || m.type == proto::msg::kResume) {
    set_paused(c, m.type == proto::msg::kPause);
  } else {
    send_to_client(c, proto::make_error_message(proto::kControlStream, "unknown_type",
                                                "unknown control message \"" + m.type + "\"", false));
  }
}

// Pause and resume go through QEMU's monitor; the answer goes to the client
// once QEMU did it. Asking for the state the VM is already in is answered
// `ok` at once. The marker file tells the library (and so `moat ps`) that
// the sandbox is paused; it goes with the shim.
void Shim::set_paused(Client& c, bool pause) {
  if (stopping_) {
    send_to_client(c, proto::make_error_message(proto::kControlStream, "ESHUTDOWN", "the sandbox is stopping", false));
    return;
  }
  if (saving_) {
    send_to_client(c, proto::make_error_message(proto::kControlStream, "EBUSY",
                                                "the sandbox is being paused to disk", false));
    return;
  }
  resume_on_leave_.reset();
  ClientId id = c.id;
  monitor_.execute(pause ? "stop" : "cont", [this, id, pause](Result<proto::Json> done) {
    auto it = clients_.find(id);
    if (!done) {
      log(std::string(pause ? "pause" : "resume") + " failed: " + done.error().message);
      if (it != clients_.end())
        send_to_client(*it->second, proto::make_error_message(proto::kControlStream, "EIO", done.error().message, false));
      return;
    }
    if (paused_ != pause) {
      if (pause) {
        mark_paused(true);
        log("paused");
      } else {
        note_running_again();
      }
    }
    if (it != clients_.end()) send_to_client(*it->second, proto::make_message(proto::kControlStream, proto::msg::kOk));
  });
}

void Shim::note_running_again() {
  mark_paused(false);
  // The guest's clocks stood still while paused: its wall clock is set from
  // the host's again (as at boot). The hello also ends the agent's quiet
  // after a save that kept the VM (a memory snapshot).
  agent_quiet_ = false;
  send_host_hello(/*restored=*/false);
  log("resumed");
}

void Shim::resume_after_departed_saver() {
  resume_on_leave_.reset();
  if (stopping_ || !paused_) return;
  log("the client that saved the VM's state left before resuming it: the VM runs again");
  monitor_.execute("cont", [this](Result<proto::Json> done) {
    if (!done) return log("resume failed: " + done.error().message);
    if (paused_) note_running_again();
  });
}

// paused_ and the marker that tells the library (pause.cpp) the vCPUs stand.
void Shim::mark_paused(bool paused) {
  paused_ = paused;
  if (!paused) {
    ::unlink(paused_marker_path(cfg_.dir).c_str());
  } else if (auto st = write_file_atomic(paused_marker_path(cfg_.dir), "", 0644); !st) {
    log(st.error().message);
  }
}

void Shim::send_host_hello(bool restored) {
  if (!agent_fd_) return;
  proto::Json hello = proto::Json::object();
  hello["time_ns"] = realtime_ns();
  if (restored) {
    hello["restored"] = true;
    // Its own name and fresh entropy (a child of a memory snapshot shares
    // its parent's memory, random state included).
    hello["hostname"] = cfg_.vm.hostname;
    std::vector<std::uint8_t> seed(64);
    if (::getrandom(seed.data(), seed.size(), 0) == static_cast<ssize_t>(seed.size()))
      hello["entropy"] = proto::Json::binary(seed);
  }
  send_to_agent(proto::make_message(proto::kControlStream, proto::msg::kHello, std::move(hello)));
  send_port_watch(restored);
}

// After each hello (proto/port_watch.h). A restored guest may still watch
// for the shim that saved it: told to stop when this one does not want it.
void Shim::send_port_watch(bool restored) {
  bool wanted = publishes_listening();
  if (wanted || restored) send_to_agent(proto::make_watch_ports(wanted ? kPortWatchIntervalMs : 0));
}

void Shim::on_guest_listening(const proto::Json& payload) {
  auto ports = proto::parse_listening(payload);
  if (!ports) return log("agent: " + ports.error().message);
  if (publishes_listening()) network_->publish_listening(std::move(*ports));
}

// The guest's memory numbers come from its agent: requests wait for its
// answer (or kGuestStatsWait, then go without them), and requests that
// arrive meanwhile share the one question.
void Shim::ask_guest_for_stats(Client& c) {
  if (pending_stats_.size() >= kMaxPendingStats) {
    send_to_client(c, proto::make_error_message(proto::kControlStream, "busy", "too many stats requests", false));
    return;
  }
  pending_stats_.push_back(c.id);
  if (pending_stats_.size() > 1) return;
  if (!agent_fd_ || stopping_) {
    answer_stats(proto::Json());
    return;
  }
  send_to_agent(proto::make_message(proto::kControlStream, proto::msg::kStats));
  stats_due_ = Clock::now() + kGuestStatsWait;
}

void Shim::answer_stats(const proto::Json& guest) {
  StatsSources from;
  from.group = qemu_jail_.cgroup ? &*qemu_jail_.cgroup : nullptr;
  from.qemu = qemu_ ? qemu_->pid() : -1;
  from.network = network_.get();
  for (const auto& disk : cfg_.vm.disks)
    if (!disk.read_only) from.writable_disks.push_back(disk.path);
  from.uptime_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - vm_started_at_).count());
  from.execs = execs_started_;
  SandboxStats stats = collect_sandbox_stats(from);
  add_guest_memory(stats, guest);
  auto reply = proto::make_message(proto::kControlStream, proto::msg::kStats, stats_to_json(stats));
  for (ClientId id : pending_stats_)
    if (auto it = clients_.find(id); it != clients_.end()) send_to_client(*it->second, reply);
  pending_stats_.clear();
  stats_due_.reset();
}

void Shim::drop_client(ClientId id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  for (std::uint32_t guest : router_.drop_client(id))
    send_to_agent(proto::make_message(guest, proto::msg::kCancel));
  bool owner = it->second->owner;
  loop_.remove(it->second->fd.get());
  clients_.erase(it);
  if (resume_on_leave_ == id) resume_after_departed_saver();
  if (owner && cfg_.stop_when_owner_leaves) begin_stop("the owning client disconnected");
}

void Shim::read_agent() {
  char buf[65536];
  ssize_t n = ::read(agent_fd_.get(), buf, sizeof(buf));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    // QEMU closed the channel: it is exiting; the pidfd will say so.
    close_agent();
    return;
  }
  agent_decoder_.feed(buf, static_cast<std::size_t>(n));
  proto::Frame f;
  while (true) {
    auto got = agent_decoder_.next(f);
    if (!got) {
      log("agent protocol violation: " + got.error().message + "; stopping the VM");
      close_agent();
      begin_stop("agent protocol violation");
      return;
    }
    if (!*got) return;
    handle_agent_frame(f);
  }
}

void Shim::close_agent() {
  loop_.remove(agent_fd_.get());
  agent_fd_.reset();
}

void Shim::on_agent_events(EventLoop::Events events) {
  if (events & kReadableOrGone) read_agent();
  if (agent_fd_ && (events & EventLoop::kWritable)) flush_agent();
}

void Shim::on_client_events(ClientId id, EventLoop::Events events) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  if (events & kReadableOrGone) read_client(*it->second);
  if (events & EventLoop::kWritable) flush_client(*it->second);
}

void Shim::on_signal() {
  struct signalfd_siginfo si;
  while (::read(signal_fd_.get(), &si, sizeof(si)) == sizeof(si)) {
  }
  begin_stop("signal received");
}

void Shim::handle_agent_frame(const proto::Frame& f) {
  if (f.stream == proto::kControlStream) {
    auto m = proto::decode_message(f);
    if (m && m->type == proto::msg::kStats) {
      if (!pending_stats_.empty()) answer_stats(m->payload);
      return;
    }
    if (m && m->type == proto::msg::kQuiesced) return on_agent_quiesced();
    if (m && m->type == proto::msg::kListening) return on_guest_listening(m->payload);
    if (m && m->type == proto::msg::kHalted) {
      if (halting_ && !killed_) kill_qemu();
      return;
    }
    if (m && m->type == proto::msg::kError)
      log("agent error: " + proto::lossy_utf8(proto::parse_error(m->payload, "error", "?").message));
    return;
  }
  auto dest = router_.to_client(f.stream);
  if (!dest) return;  // a stream whose client left
  auto it = clients_.find(dest->first);
  if (it == clients_.end()) return;
  proto::encode_frame(dest->second, f.flags, f.body, it->second->out);
  if (f.flags & proto::kFlagEndStream) {
    note_stream_end(f);
    router_.end_guest_stream(f.stream);
  }
}

void Shim::begin_stop(const std::string& why) {
  if (stopping_) return;
  // A stop wins over a save under way: the guest runs again and powers off.
  if (saving_) fail_save("the sandbox is stopping (" + why + ")");
  stopping_ = true;
  // A paused guest cannot power off: its vCPUs run again first.
  if (paused_) monitor_.execute("cont", [](Result<proto::Json>) {});
  finish(true, why);
  log("stopping: " + why);
  if (cfg_.discard_on_stop || cfg_.stop_timeout_ms == 0) return halt_guest();
  if (agent_fd_) send_to_agent(proto::make_message(proto::kControlStream, proto::msg::kShutdown));
  stop_deadline_ = Clock::now() + std::chrono::milliseconds(cfg_.stop_timeout_ms);
}

void Shim::halt_guest() {
  // What the guest may still hold that must outlive it: files on the
  // shares, and the writable disk unless it is about to be deleted.
  bool keep_disk = !cfg_.discard_on_stop &&
                   std::any_of(cfg_.vm.disks.begin(), cfg_.vm.disks.end(), [](const auto& d) { return !d.read_only; });
  bool shares = !cfg_.volumes.empty();
  // Before the agent's hello nothing of the user's has run; a quiesced
  // agent reads nothing but a hello.
  bool agent_can_flush = agent_fd_ && !agent_hello_.empty() && !agent_quiet_;
  if ((keep_disk || shares) && agent_can_flush) {
    send_to_agent(proto::make_message(proto::kControlStream, proto::msg::kHalt, {{"sync_all", keep_disk}}));
    halting_ = true;
    stop_deadline_ = Clock::now() + std::chrono::milliseconds(kHaltWaitMs);
    return;
  }
  kill_qemu();
}

void Shim::kill_qemu() {
  qemu_->signal(SIGKILL);
  killed_ = true;
  stop_deadline_ = Clock::now() + std::chrono::milliseconds(kKillGraceMs);
}

// How QEMU ended, naming its memory limit when that is what killed it.
std::string Shim::qemu_exit_text() const {
  int st = qemu_->wait_status();
  const auto& group = qemu_jail_.cgroup;
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && group && group->oom_kills() > 0) {
    return "QEMU killed by the kernel for going over its memory limit (" +
           std::to_string(group->memory_limit() >> 20) + " MiB: the guest's RAM and QEMU's own)";
  }
  return "QEMU " + qemu_->describe_exit();
}

void Shim::on_qemu_exit() {
  qemu_->reap();
  drain_outputs();
  if (!stopping_) {
    // The agent powers off by resetting, and -no-reboot makes that a clean
    // exit of QEMU; anything else (a signal, an error) is a crash. A kernel
    // panic (panic=-1) resets too: only the console tells it apart.
    int st = qemu_->wait_status();
    bool powered_off = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    std::string panic = powered_off ? guest_panic_reason(console_tail(kPanicScanBytes)) : "";
    if (!panic.empty())
      finish(false, panic);
    else
      finish(powered_off, powered_off ? "the guest powered off" : qemu_exit_text() + " unexpectedly");
    log(qemu_exit_text() + (powered_off ? "" : " unexpectedly"));
  }
  // Every client with an open stream learns why it ends.
  std::string why = saved_      ? "the sandbox was paused to disk; its commands ended"
                    : stopping_ ? "the sandbox was stopped"
                                : "the sandbox VM stopped unexpectedly (" + qemu_exit_text() + ")";
  for (auto& [id, c] : clients_) {
    for (std::uint32_t client_stream : router_.client_streams(id))
      send_to_client(*c, proto::make_error_message(client_stream, "sandbox_stopped", why, true));
    router_.drop_client(id);
  }
  done_ = true;
}

void Shim::check_limits() {
  if (stopping_) return;
  auto now = Clock::now();
  if (cfg_.max_duration_s && now - booted_at_ >= std::chrono::seconds(cfg_.max_duration_s))
    begin_stop("max duration of " + std::to_string(cfg_.max_duration_s) + " s reached");
  else if (cfg_.idle_timeout_s && router_.open_streams() == 0 &&
           now - idle_since_ >= std::chrono::seconds(cfg_.idle_timeout_s))
    begin_stop("idle for " + std::to_string(cfg_.idle_timeout_s) + " s");
  else if (cfg_.stop_when_owner_leaves && !owner_assigned_ && now - booted_at_ >= kOwnerWait)
    begin_stop("no client took the sandbox within " + std::to_string(kOwnerWait.count()) + " s of its start");
}

// How long the event loop may sleep before a limit is due (-1: no limit
// pending).
int Shim::next_limit_timeout_ms() const {
  if (stopping_) return -1;
  std::optional<Clock::time_point> due;
  if (cfg_.max_duration_s) due = booted_at_ + std::chrono::seconds(cfg_.max_duration_s);
  if (cfg_.idle_timeout_s && router_.open_streams() == 0) {
    auto idle_due = idle_since_ + std::chrono::seconds(cfg_.idle_timeout_s);
    if (!due || idle_due < *due) due = idle_due;
  }
  if (cfg_.stop_when_owner_leaves && !owner_assigned_) {
    auto owner_due = booted_at_ + kOwnerWait;
    if (!due || owner_due < *due) due = owner_due;
  }
  return due ? ms_until(*due) : -1;
}

// The channels of a running sandbox. QEMU's exit only ends the wake-up
// here: serve() handles it after the wake-up's output is saved and the log
// limiter has flushed, so shim.log reads in the order things happened.
Status Shim::watch_serving_channels() {
  MOAT_TRY(loop_.add(
      qemu_->pidfd(), EventLoop::kReadable,
      [this](EventLoop::Events ev) {
        if (!(ev & EventLoop::kReadable)) return;
        qemu_exited_ = true;
        loop_.stop_dispatch();
      },
      kQemuExit));
  if (signal_fd_) {
    MOAT_TRY(loop_.add(
        signal_fd_.get(), EventLoop::kReadable,
        [this](EventLoop::Events ev) {
          if (ev & EventLoop::kReadable) on_signal();
        },
        kSignals));
  }
  MOAT_TRY(loop_.add(
      listen_fd_.get(), EventLoop::kReadable,
      [this](EventLoop::Events ev) {
        if (ev & EventLoop::kReadable) accept_clients();
      },
      kListener));
  if (agent_fd_) {
    MOAT_TRY(loop_.add(
        agent_fd_.get(), EventLoop::kReadable, [this](EventLoop::Events ev) { on_agent_events(ev); },
        kAgentChannel));
  }
  if (monitor_.fd() >= 0) {
    MOAT_TRY(loop_.add(
        monitor_.fd(), EventLoop::kReadable,
        [this](EventLoop::Events ev) {
          if (ev & kReadableOrGone) monitor_.on_readable();
          if (ev & EventLoop::kWritable) monitor_.on_writable();
          // A broken channel is watched no more: a socket QEMU closed would
          // otherwise report its hang-up at every wake-up. (Why it broke is
          // what a later pause or resume fails with, and logs.)
          if (monitor_.broken()) loop_.remove(monitor_.fd());
        },
        kMonitor));
  }
  return ok_status();
}

// What each channel waits for in the next wake-up. Backlogs stop reading:
// past the client limit the agent is not read, past the agent limit no
// client is; writing is asked for only when output is pending.
void Shim::update_interest() {
  bool agent_backlog = agent_out_.size() > kMaxAgentBacklog;
  bool client_backlog = false;
  for (auto& [id, c] : clients_) client_backlog |= c->out.size() > kMaxClientBacklog;

  std::vector<std::pair<int, EventLoop::Events>> wanted;
  wanted.emplace_back(listen_fd_.get(), stopping_ ? 0 : EventLoop::kReadable);
  if (agent_fd_) {
    EventLoop::Events ev = 0;
    if (!client_backlog) ev |= EventLoop::kReadable;
    if (!agent_out_.empty()) ev |= EventLoop::kWritable;
    wanted.emplace_back(agent_fd_.get(), ev);
  }
  if (monitor_.fd() >= 0 && !monitor_.broken())
    wanted.emplace_back(monitor_.fd(), EventLoop::kReadable | (monitor_.wants_write() ? EventLoop::kWritable : 0));
  for (auto& [id, c] : clients_) {
    EventLoop::Events ev = 0;
    if (!agent_backlog && !c->closing) ev |= EventLoop::kReadable;
    if (!c->out.empty()) ev |= EventLoop::kWritable;
    wanted.emplace_back(c->fd.get(), ev);
  }
  for (auto [fd, ev] : wanted)
    if (auto st = loop_.modify(fd, ev); !st) log(st.error().message);
}

void Shim::serve() {
  bool had_streams = false;
  booted_at_ = idle_since_ = Clock::now();
  if (auto watching = watch_serving_channels(); !watching) {
    log(watching.error().message);
    return;
  }
  while (!done_) {
    flush_agent();
    for (auto& [id, c] : clients_) flush_client(*c);
    // Drop clients that hung up (after their output went out).
    std::vector<ClientId> gone;
    for (auto& [id, c] : clients_)
      if (c->closing && c->out.empty()) gone.push_back(id);
    for (ClientId id : gone) drop_client(id);
    flush_agent();
    update_interest();

    int timeout = next_limit_timeout_ms();
    if (stop_deadline_) timeout = ms_until(*stop_deadline_);
    // A count of suppressed log lines is written when its second is over.
    if (int summary = log_.flush_due_ms(); summary >= 0) timeout = sooner(timeout, summary);
    // A held-back network event is written when its gap is over.
    if (!network_event_.empty()) timeout = sooner(timeout, 1000);
    // Stats requests whose guest answer is late go without it.
    if (stats_due_) timeout = sooner(timeout, ms_until(*stats_due_));
    if (saving_) timeout = sooner(timeout, ms_until(saving_->deadline));
    if (auto ran = loop_.run_once(timeout); !ran) {
      log(ran.error().message);
      break;
    }
    log_.flush();
    check_save_deadline();
    flush_network_event(false);
    if (qemu_exited_) {
      on_qemu_exit();
      break;
    }
    // The idle clock restarts when the last stream ends (seen here, in the
    // iteration that ended it) and runs while none is open.
    if (router_.open_streams() > 0 || had_streams) idle_since_ = Clock::now();
    had_streams = router_.open_streams() > 0;
    check_limits();
    if (stats_due_ && Clock::now() >= *stats_due_) answer_stats(proto::Json());
    if (stop_deadline_ && Clock::now() >= *stop_deadline_) {
      if (!killed_) {
        log(halting_ ? "the guest did not flush its files within " + std::to_string(kHaltWaitMs / 1000) +
                           " s; killing QEMU"
                     : "guest did not power off in time; killing QEMU");
        kill_qemu();
      } else {
        stop_deadline_.reset();
      }
    }
  }
}

// Once QEMU and the volume servers run and the network is up, the shim
// starts no process, mounts nothing and changes no identity again: from
// here on it keeps only CAP_KILL (QEMU runs as a user of its own, and only
// a signal ends a QEMU that ignores the guest's power-off), and may make
// only the calls of its allow-list. Its files, the cgroup directories and
// the uid lease it removes at the end are its own uid's.
Status Shim::restrict_system_calls() {
  static constexpr int kKeep[] = {CAP_KILL};
  if (int err = jail::keep_only_capabilities(kKeep, 1); err != 0)
    return errno_error("dropping the shim's capabilities", err);
  if (auto st = jail::install_syscall_filter(shim_syscall_filter()); !st)
    return st.error().wrap("restricting the shim's system calls");
  return ok_status();
}

void Shim::cleanup() {
  if (qemu_ && !qemu_->exited()) {
    qemu_->signal(SIGKILL);
    while (!qemu_->reap()) {
      struct timespec ts {0, 5 * 1000 * 1000};
      ::nanosleep(&ts, nullptr);
    }
  }
  volumes_.reset();  // QEMU is gone: no guest uses them any more
  network_.reset();
  if (network_log_wake_) drain_network_log();
  flush_network_event(true);
  listen_fd_.reset();
  ::unlink(paused_marker_path(cfg_.dir).c_str());
  ::unlink(control_socket_path(cfg_.dir).c_str());
  ::unlink(shim_pid_path(cfg_.dir).c_str());
  if (cfg_.remove_dir_on_exit) {
    if (auto st = store::remove_tree(cfg_.dir); !st) log(st.error().message);
  } else {
    finish(false, "the shim ended without a reason");
    if (auto st = write_shim_exit(*exit_, cfg_.dir); !st) log(st.error().message);
  }
  // Clients learn the sandbox is gone when their connection closes, which
  // happens last so that nothing of the sandbox is left when they see it.
  for (auto& [id, c] : clients_) {
    int flags = ::fcntl(c->fd.get(), F_GETFL);
    ::fcntl(c->fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    struct timeval tv {1, 0};
    ::setsockopt(c->fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    flush_client(*c);
  }
  clients_.clear();
}

int Shim::run(int ready_fd) {
  ready_fd_ = ready_fd;
  // The launcher reads the verdict until end-of-file. On success the pipe is
  // closed at once; on failure it stays open until this process exits, so
  // the caller sees the error only when nothing of the sandbox is left.
  // Returns false when nobody reads the verdict any more (EPIPE).
  auto report = [&](const std::string& line, bool close_now) {
    if (ready_fd_ < 0) return true;
    std::string text = line + "\n";
    bool read = ::write(ready_fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (close_now) {
      ::close(ready_fd_);
      ready_fd_ = -1;
    }
    return read;
  };
  if (auto locked = take_lock(); !locked) {
    // Another shim owns this directory: touch nothing of it.
    log(locked.error().message);
    report("error: " + locked.error().message, true);
    return 1;
  }
  // shim.log and exec.log keep their history across boots, under the cap. If
  // they cannot be opened the sandbox still runs, without them.
  if (auto opened = log_.open(shim_log_path(cfg_.dir), cfg_.log_max_bytes); !opened)
    log("shim.log: " + opened.error().message);
  if (auto history = CappedLog::open(exec_log_path(cfg_.dir), cfg_.log_max_bytes, CappedLog::Start::kAppend))
    exec_log_ = std::move(*history);
  else
    log(history.error().message);
  {
    std::ofstream pid(shim_pid_path(cfg_.dir));
    pid << ::getpid() << "\n";
  }
  Status st = prepare();
  if (st) st = boot();
  if (st) st = restrict_system_calls();
  // A starter that died during the boot, or before the verdict reached it,
  // abandoned the start: the sandbox stops as if never started (no one else
  // would ever stop it).
  bool abandoned = st ? !report("ok", true) : st.error().code == ECANCELED;
  if (abandoned) {
    log(kStarterGone);
    finish(true, kStarterGone);
    cleanup();
    log_.flush(/*force=*/true);
    return 1;
  }
  if (!st) {
    log(st.error().message);
    report("error: " + st.error().message, false);
    finish(false, "boot failed: " + st.error().message);
    cleanup();
    log_.flush(/*force=*/true);
    return 1;
  }
  serve();
  cleanup();
  log_.flush(/*force=*/true);
  return 0;
}

// Until the shim enforces a network policy there is none to replace: the
// client is told so, and its record is left as it was.
}  // namespace moat::shim
