#include "oci_runtime/runtime_commands.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "moat/version.h"
#include "oci_runtime/bundle_config.h"
#include "oci_runtime/init_keeper.h"
#include "oci_runtime/network_namespace.h"
#include "oci_runtime/runtime_log.h"
#include "util/hex.h"
#include "util/read_file.h"
#include "util/unique_fd.h"
#include "util/write_file_atomic.h"

namespace moat::oci {
namespace {

int fail(const Error& e) {
  log_error(e.message);
  return 1;
}

std::string absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof(cwd))) return path;
  return path.empty() || path == "." ? std::string(cwd) : std::string(cwd) + "/" + path;
}

ExecOptions exec_options_for(const ProcessSpec& p) {
  ExecOptions o;
  o.argv = p.args;
  o.env = p.env;
  o.cwd = p.cwd;
  o.user = std::to_string(p.uid) + ":" + std::to_string(p.gid);
  o.tty = p.terminal;
  o.rows = p.rows;
  o.cols = p.cols;
  o.rlimits = p.rlimits;
  o.capabilities = p.capabilities;
  o.no_new_privileges = p.no_new_privileges;
  o.stdin_open = true;
  return o;
}

// The engine's resolv.conf for the container (a file bind at
// /etc/resolv.conf), or "".
std::string engine_resolv_conf(const BundleConfig& c) {
  for (const auto& b : c.binds) {
    if (b.is_file && b.destination == "/etc/resolv.conf") {
      auto text = read_file_bounded(b.source, 64 * 1024);
      return text ? *text : std::string();
    }
  }
  return "";
}

// What the guest reaches unless io.moat.network says: in the host's
// namespace (none listed) moat's default, public egress; in a fresh, empty
// one nothing, as the engine asked for no network; in the engine's (a pod's)
// everything the namespace reaches: its routes and the cluster's network
// policies are the boundary there, and moat's rules (annotations) narrow it.
NetworkOptions network_for(const BundleConfig& c) {
  NetworkOptions n = c.network;
  switch (c.network_namespace) {
    case NetworkNamespace::kHost: n.mode = NetworkMode::kPublic; break;
    case NetworkNamespace::kFresh: n.mode = NetworkMode::kNone; break;
    case NetworkNamespace::kJoin: n.mode = NetworkMode::kAll; break;
  }
  if (c.network_mode) n.mode = *c.network_mode;
  // In the engine's namespace the host's resolver may be out of reach (a
  // 127.0.0.53 stub): moat's resolver asks the engine's instead.
  if (c.network_namespace == NetworkNamespace::kJoin && n.dns.empty()) n.dns = first_nameserver(engine_resolv_conf(c));
  return n;
}

SandboxOptions sandbox_options_for(const BundleConfig& c, const std::string& id) {
  SandboxOptions o;
  o.network = network_for(c);
  o.rootfs_share = c.rootfs;
  o.rootfs_share_read_only = c.root_readonly;
  o.hostname = c.hostname;
  if (c.memory_mib) o.memory_mib = c.memory_mib;
  if (c.cpus) o.cpus = c.cpus;
  for (const auto& b : c.binds) {
    if (!b.is_file) o.volumes.push_back({b.source, b.destination, b.read_only, 0});
  }
  for (const auto& t : c.tmpfs) o.tmpfs.push_back({t.destination, t.size_bytes});
  o.labels["io.moat.oci.container"] = id;
  return o;
}

std::string dirname_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// The engine's resolv.conf keeps its search domains and options, but the
// guest goes on asking moat's resolver (the nameservers the guest's agent
// wrote), which forwards to the engine's: domain rules see every name.
Status copy_resolv_conf(Sandbox& sb, const std::string& source, const WriteFileOptions& w) {
  MOAT_ASSIGN_OR_RETURN(auto engine, read_file_bounded(source, 64 * 1024));
  std::string guest;
  MOAT_TRY(sb.read_file("/etc/resolv.conf", [&](std::string_view bytes) -> Status {
    if (guest.size() + bytes.size() > 64 * 1024) return make_error("the guest's /etc/resolv.conf is too large", EFBIG);
    guest.append(bytes);
    return ok_status();
  }));
  if (first_nameserver(guest).empty()) return sb.write_file("/etc/resolv.conf", engine, w);  // no network: as given
  return sb.write_file("/etc/resolv.conf", with_guest_nameservers(engine, guest), w);
}

// Bind mounts of single files (the engine's /etc/hosts, /etc/resolv.conf,
// /etc/hostname, /run/.containerenv): virtio-fs shares directories, so their
// bytes are written into the root instead. Later changes on the host are
// not seen. A read-only root cannot take them: each is named in the log, and
// the image's own files stay.
Status copy_file_binds(const std::string& id, const std::string& sandbox_id, const BundleConfig& c) {
  bool any = std::any_of(c.binds.begin(), c.binds.end(), [](const BindMount& b) { return b.is_file; });
  if (!any) return ok_status();
  if (c.root_readonly) {
    for (const auto& b : c.binds)
      if (b.is_file) log_warning(id + ": mounts " + b.destination + ": not copied in (the root is read-only)");
    return ok_status();
  }
  MOAT_ASSIGN_OR_RETURN(auto sb, Sandbox::open(sandbox_id));
  for (const auto& b : c.binds) {
    if (!b.is_file) continue;
    UniqueFd fd(::open(b.source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_error("bind source " + b.source);
    struct stat st {};
    ::fstat(fd.get(), &st);
    MOAT_TRY(sb.mkdir(dirname_of(b.destination), /*parents=*/true));
    WriteFileOptions w;
    w.mode = st.st_mode & 07777;
    Status copied = b.destination == "/etc/resolv.conf" ? copy_resolv_conf(sb, b.source, w) : sb.write_file(b.destination, fd.get(), w);
    if (!copied) return copied.error().wrap("copying " + b.source + " to " + b.destination);
  }
  return ok_status();
}

Status write_pid_file(const std::string& path, pid_t pid) {
  if (path.empty()) return ok_status();
  // No newline: conmon and containerd read the file as a bare number.
  return write_file_atomic(absolute(path), std::to_string(pid), 0644);
}

// Waits until the keeper is gone (a zombie counts as gone), up to `timeout`.
bool wait_gone(const ContainerRecord& r, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (keeper_alive(r)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

Status remove_sandbox_quietly(const std::string& sandbox) {
  if (sandbox.empty()) return ok_status();
  auto st = remove_sandbox(sandbox, /*force=*/true);
  if (!st && st.error().code != ENOENT) return st;
  return ok_status();
}

std::string random_suffix() {
  unsigned char b[6];
  if (::getrandom(b, sizeof(b), 0) != static_cast<ssize_t>(sizeof(b))) return std::to_string(::getpid());
  return lower_hex(b, sizeof(b));
}

// How long `start` waits for the guest to run the program.
constexpr std::chrono::seconds kStartTimeout{60};

}  // namespace

Result<int> parse_signal(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    if (text.size() > 3) return make_error("unknown signal \"" + text + "\"", EINVAL);
    int n = std::stoi(text);
    if (n <= 0 || n >= NSIG) return make_error("unknown signal \"" + text + "\"", EINVAL);
    return n;
  }
  std::string name = text;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  for (int s = 1; s < SIGRTMIN; ++s) {
    const char* abbrev = ::sigabbrev_np(s);
    if (abbrev && name == abbrev) return s;
  }
  return make_error("unknown signal \"" + text + "\"", EINVAL);
}

int create_container(const StateDir& dir, const std::string& self, const std::string& id, const CreateFlags& f) {
  if (auto st = check_container_id(id); !st) return fail(st.error());
  std::string bundle = absolute(f.bundle);
  auto cfg = read_bundle_config(bundle);
  if (!cfg) return fail(cfg.error());
  for (const auto& u : cfg->unsupported) log_warning(id + ": " + u);
  if (auto st = dir.make(id); !st) return fail(st.error());
  auto lock = dir.lock(id);
  if (!lock) return fail(lock.error());

  std::string sandbox_id;
  auto undo = [&](const Error& e) {
    (void)remove_sandbox_quietly(sandbox_id);
    (void)dir.remove(id);
    return fail(e.wrap("create " + id));
  };
  // Before the sandbox starts: its shim, forked from this thread, opens its
  // sockets (egress, published ports) in the engine's namespace. The keeper
  // is forked from here too, so /proc/KEEPER/ns/net, which engines hand to
  // the other containers of a pod, is that namespace (or, for a fresh one,
  // a new empty namespace, as runc would have made).
  if (cfg->network_namespace == NetworkNamespace::kJoin) {
    if (auto st = join_network_namespace(cfg->network_namespace_path); !st) return undo(st.error());
  } else if (cfg->network_namespace == NetworkNamespace::kFresh) {
    if (auto st = enter_new_network_namespace(); !st) return undo(st.error());
  }
  if (!cfg->pod_sandbox) {
    auto info = create_sandbox(sandbox_options_for(*cfg, id));
    if (!info) return undo(info.error());
    sandbox_id = info->id;
    if (auto st = start_sandbox(sandbox_id); !st) return undo(st.error());
    if (auto st = copy_file_binds(id, sandbox_id, *cfg); !st) return undo(st.error());
  }

  KeeperSpec spec;
  spec.sandbox = sandbox_id;
  spec.process = exec_options_for(cfg->process);
  spec.wait_for_start = true;
  spec.start_fifo = dir.dir_of(id) + "/start.fifo";
  spec.running_marker = dir.dir_of(id) + "/running";
  spec.stop_sandbox_on_exit = true;
  spec.console_socket = f.console_socket.empty() ? "" : absolute(f.console_socket);
  if (cfg->process.terminal && spec.console_socket.empty())
    return undo(make_error("process.terminal is set but no --console-socket was given", EINVAL));
  if (::mkfifo(spec.start_fifo.c_str(), 0600) != 0) return undo(errno_error("mkfifo " + spec.start_fifo));
  std::string spec_path = dir.dir_of(id) + "/init.json";
  if (auto st = write_file_atomic(spec_path, keeper_spec_json(spec), 0600); !st) return undo(st.error());
  auto pid = spawn_keeper(self, dir.root(), spec_path);
  if (!pid) return undo(pid.error());

  ContainerRecord r;
  r.id = id;
  r.oci_version = cfg->oci_version;
  r.bundle = bundle;
  r.rootfs = cfg->rootfs;
  r.created = rfc3339_now();
  r.annotations = cfg->annotations;
  r.sandbox = sandbox_id;
  r.keeper_pid = *pid;
  r.keeper_start = process_start_time(*pid);
  Status saved = dir.save(r);
  if (saved) saved = write_pid_file(f.pid_file, *pid);
  if (!saved) {
    ::kill(*pid, SIGKILL);
    return undo(saved.error());
  }
  return 0;
}

int start_container(const StateDir& dir, const std::string& id) {
  auto r = dir.load(id);
  if (!r) return fail(r.error());
  auto lock = dir.lock(id);
  if (!lock) return fail(lock.error());
  switch (status_of(dir, *r)) {
    case ContainerStatus::kStopped: return fail(make_error("cannot start a container that has stopped", EINVAL));
    case ContainerStatus::kRunning:
    case ContainerStatus::kPaused: return fail(make_error("cannot start an already running container", EBUSY));
    case ContainerStatus::kCreated: break;
  }
  std::string started = dir.dir_of(id) + "/started";
  if (auto st = write_file_atomic(started, "", 0600); !st) return fail(st.error());
  std::string fifo_path = dir.dir_of(id) + "/start.fifo";
  // Non-blocking: with no reader (the keeper died a moment ago) the open
  // fails with ENXIO instead of waiting for one.
  UniqueFd fifo(::open(fifo_path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fifo || ::write(fifo.get(), "s", 1) != 1) {
    ::unlink(started.c_str());
    return fail(make_error("cannot start container " + id + ": its process is gone", ESRCH));
  }
  // Until the program runs in the guest (the keeper marks it), or the keeper
  // is gone: a process that could not be started is start's error, as
  // runc's is.
  std::string running = dir.dir_of(id) + "/running";
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  struct stat st {};
  while (::stat(running.c_str(), &st) != 0) {
    if (!keeper_alive(*r))
      return fail(make_error("cannot start container " + id + ": its process did not start (see the container's output)", ESRCH));
    if (std::chrono::steady_clock::now() >= deadline)
      return fail(make_error("container " + id + ": its process did not start within " +
                                 std::to_string(kStartTimeout.count()) + " s", ETIMEDOUT));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return 0;
}

int print_state(const StateDir& dir, const std::string& id) {
  auto r = dir.load(id);
  if (!r) return fail(r.error());
  std::string text = state_json(*r, status_of(dir, *r));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

int kill_container(const StateDir& dir, const std::string& id, const std::string& signal, bool all) {
  auto r = dir.load(id);
  if (!r) return fail(r.error());
  auto sig = parse_signal(signal.empty() ? "SIGTERM" : signal);
  if (!sig) return fail(sig.error());
  if (status_of(dir, *r) == ContainerStatus::kStopped) {
    if (all) return 0;
    return fail(make_error("container not running", ESRCH));
  }
  // The keeper forwards what it can catch to the process in the guest.
  // SIGKILL it cannot: it dies of it, and the VM is ended with it.
  if (::kill(r->keeper_pid, *sig) != 0 && errno != ESRCH) return fail(errno_error("kill"));
  if (*sig == SIGKILL && !r->sandbox.empty()) (void)stop_sandbox(r->sandbox, std::chrono::seconds(0));
  return 0;
}

// runc's pause and resume: the container's VM has its vCPUs stopped (and
// run again) by its shim; the process and its keeper stay as they are.
int set_container_paused(const StateDir& dir, const std::string& id, bool pause) {
  auto r = dir.load(id);
  if (!r) return fail(r.error());
  auto lock = dir.lock(id);
  if (!lock) return fail(lock.error());
  ContainerStatus status = status_of(dir, *r);
  if (pause && status != ContainerStatus::kRunning)
    return fail(make_error("container " + id + " is not running", status == ContainerStatus::kPaused ? EBUSY : ESRCH));
  if (!pause && status != ContainerStatus::kPaused)
    return fail(make_error("container " + id + " is not paused", EINVAL));
  if (r->sandbox.empty())
    return fail(make_error("container " + id + " is a pod's sandbox container: it has no VM to pause", EINVAL));
  Status st = pause ? pause_sandbox(r->sandbox) : resume_sandbox(r->sandbox);
  if (!st) return fail(st.error());
  return 0;
}

int update_container(const StateDir& dir, const std::string& id, const std::string& resources_file) {
  if (auto st = check_container_id(id); !st) return fail(st.error());
  auto r = dir.load(id);
  if (!r) return fail(r.error());
  if (resources_file.empty()) return fail(make_error("update: give --resources FILE (or - for standard input)", EINVAL));
  auto text = read_file_bounded(resources_file == "-" ? "/dev/stdin" : resources_file, kMaxConfigBytes);
  if (!text) return fail(text.error().wrap("update: --resources " + resources_file));
  auto asked = parse_resource_update(*text);
  if (!asked) return fail(asked.error().wrap("update"));
  for (const auto& u : asked->unsupported) log_warning("update: " + u);
  if (!asked->memory_mib && !asked->cpus) return 0;
  if (r->sandbox.empty())
    return fail(make_error("update: container " + id + " is a pod's sandbox container: it has no VM to size", EINVAL));
  auto info = inspect_sandbox(r->sandbox);
  if (!info) return fail(info.error());
  std::vector<std::string> changes;
  if (asked->memory_mib && asked->memory_mib != info->memory_mib)
    changes.push_back("memory " + std::to_string(asked->memory_mib) + " MiB (it has " +
                      std::to_string(info->memory_mib) + " MiB)");
  if (asked->cpus && asked->cpus != info->cpus)
    changes.push_back(std::to_string(asked->cpus) + " vCPUs (it has " + std::to_string(info->cpus) + ")");
  if (changes.empty()) return 0;
  std::string what = changes[0] + (changes.size() > 1 ? " and " + changes[1] : "");
  return fail(make_error("update: container " + id + "'s VM keeps its memory and vCPUs while it runs; asked for " +
                             what + ". Create the container again with the new limits",
                         ENOTSUP));
}

int delete_container(const StateDir& dir, const std::string& id, bool force) {
  if (auto st = check_container_id(id); !st) return fail(st.error());
  auto r = dir.load(id);
  if (!r) {
    if (r.error().code == ENOENT) {
      (void)dir.remove(id);
      return force ? 0 : fail(r.error());
    }
    return fail(r.error());
  }
  auto lock = dir.lock(id);
  if (!lock) return fail(lock.error());
  ContainerStatus status = status_of(dir, *r);
  if ((status == ContainerStatus::kRunning || status == ContainerStatus::kPaused) && !force)
    return fail(make_error("cannot delete container " + id + " that is not stopped: " + to_string(status), EBUSY));
  // A created container is killed without --force, as runc does.
  if (status != ContainerStatus::kStopped) {
    ::kill(r->keeper_pid, SIGKILL);
    if (!wait_gone(*r, std::chrono::seconds(10)))
      return fail(make_error("container " + id + "'s process did not end", EBUSY));
  }
  if (auto st = remove_sandbox_quietly(r->sandbox); !st) return fail(st.error());
  if (auto st = dir.remove(id); !st) return fail(st.error());
  return 0;
}

int list_containers(const StateDir& dir, const std::string& format, bool quiet) {
  auto records = dir.list();
  if (quiet) {
    for (const auto& r : records) std::printf("%s\n", r.id.c_str());
    return 0;
  }
  if (format == "json") {
    if (records.empty()) {
      std::printf("null\n");
      return 0;
    }
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& r : records) list.push_back(nlohmann::ordered_json::parse(state_json(r, status_of(dir, r))));
    std::printf("%s\n", list.dump().c_str());
    return 0;
  }
  if (format != "table") return fail(make_error("invalid format option: " + format, EINVAL));
  std::printf("%-20s %-8s %-10s %-40s %-32s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
  for (const auto& r : records) {
    auto s = status_of(dir, r);
    std::printf("%-20s %-8d %-10s %-40s %-32s %s\n", r.id.c_str(), s == ContainerStatus::kStopped ? 0 : r.keeper_pid,
                to_string(s), r.bundle.c_str(), r.created.c_str(), "root");
  }
  return 0;
}

int print_ps(const StateDir& dir, const std::string& id, const std::string& format) {
  auto r = dir.load(id);
  if (!r) return fail(r.error());
  bool alive = status_of(dir, *r) != ContainerStatus::kStopped;
  if (format == "json") {
    std::printf("%s\n", alive ? ("[" + std::to_string(r->keeper_pid) + "]").c_str() : "null");
    return 0;
  }
  if (format != "table") return fail(make_error("invalid format option: " + format, EINVAL));
  std::printf("PID\n");
  if (alive) std::printf("%d\n", r->keeper_pid);
  return 0;
}

int exec_in_container(const StateDir& dir, const std::string& self, const std::string& id, const ExecFlags& f) {
  auto fail_exec = [](const Error& e) {
    log_error(e.message);
    return 255;
  };
  auto r = dir.load(id);
  if (!r) return fail_exec(r.error());
  if (status_of(dir, *r) == ContainerStatus::kStopped)
    return fail_exec(make_error("cannot exec in a stopped container", ESRCH));
  if (r->sandbox.empty())
    return fail_exec(make_error("container " + id + " is a pod's sandbox container: it holds the pod's namespaces and runs nothing", EINVAL));
  ProcessSpec p;
  std::vector<std::string> unsupported;
  if (!f.process_file.empty()) {
    auto text = read_file_bounded(f.process_file, kMaxConfigBytes);
    if (!text) return fail_exec(text.error());
    auto parsed = parse_process(*text, unsupported);
    if (!parsed) return fail_exec(parsed.error());
    p = std::move(*parsed);
  } else {
    if (f.args.empty()) return fail_exec(make_error("exec: no command given", EINVAL));
    p.args = f.args;
    p.env = f.env;
    if (!f.cwd.empty()) p.cwd = f.cwd;
    p.terminal = f.tty;
    if (!f.user.empty()) {
      auto colon = f.user.find(':');
      char* end = nullptr;
      p.uid = static_cast<std::uint32_t>(std::strtoul(f.user.substr(0, colon).c_str(), &end, 10));
      if (colon != std::string::npos) p.gid = static_cast<std::uint32_t>(std::strtoul(f.user.substr(colon + 1).c_str(), nullptr, 10));
    }
  }
  for (const auto& u : unsupported) log_warning(id + ": exec: " + u);
  KeeperSpec spec;
  spec.sandbox = r->sandbox;
  spec.process = exec_options_for(p);
  spec.console_socket = f.console_socket.empty() ? "" : absolute(f.console_socket);
  if (p.terminal && spec.console_socket.empty() && f.detach)
    return fail_exec(make_error("a terminal for a detached exec needs --console-socket", EINVAL));
  std::string spec_path = dir.dir_of(id) + "/exec-" + random_suffix() + ".json";
  if (auto st = write_file_atomic(spec_path, keeper_spec_json(spec), 0600); !st) return fail_exec(st.error());
  auto pid = spawn_keeper(self, dir.root(), spec_path);
  ::unlink(spec_path.c_str());
  if (!pid) return fail_exec(pid.error());
  if (auto st = write_pid_file(f.pid_file, *pid); !st) {
    ::kill(*pid, SIGKILL);
    return fail_exec(st.error());
  }
  if (f.detach) return 0;
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_exec(errno_error("wait for exec"));
  }
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int print_features() {
  nlohmann::ordered_json j;
  j["ociVersionMin"] = "1.0.0";
  j["ociVersionMax"] = "1.1.0";
  j["hooks"] = nlohmann::json::array();
  j["mountOptions"] = {"bind", "rbind", "ro", "rw"};
  j["linux"] = {{"namespaces", {"mount", "pid", "uts", "ipc", "network"}},
                {"capabilities", nlohmann::json::array()},
                {"cgroup", {{"v1", false}, {"v2", false}, {"systemd", false}, {"systemdUser", false}}},
                {"seccomp", {{"enabled", false}}},
                {"apparmor", {{"enabled", false}}},
                {"selinux", {{"enabled", false}}}};
  j["annotations"] = {{"io.moat.runtime.version", moat::version()},
                      {"io.moat.runtime.isolation", "microvm"}};
  std::printf("%s\n", j.dump(4).c_str());
  return 0;
}

}  // namespace moat::oci
