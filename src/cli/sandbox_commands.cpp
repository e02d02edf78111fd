#include "cli/sandbox_commands.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/exec_runner.h"
#include "cli/json_output.h"
#include "moat/json.h"
#include "moat/events.h"
#include "moat/logs.h"
#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "moat/volumes.h"
#include "cli/network_flags.h"
#include "cli/pull_progress.h"
#include "moat/text.h"

namespace moat::cli {
namespace {

using Json = nlohmann::json;

// Defaults come from SandboxOptions: the library owns them.
struct VmFlags {
  std::string rootfs_dir;
  std::string rootfs_image;
  bool writable_root = SandboxOptions{}.writable_root;
  int cpus = SandboxOptions{}.cpus;
  std::uint32_t cpu_weight = SandboxOptions{}.cpu_weight;
  std::uint32_t io_weight = 0;
  int memory_mib = SandboxOptions{}.memory_mib;
  std::uint64_t disk_size_mib = SandboxOptions{}.disk_size_mib;
  std::string accel = to_string(SandboxOptions{}.accel);
  std::string hostname;
  double boot_timeout_s = std::chrono::duration<double>(SandboxOptions{}.boot_timeout).count();
};

struct SandboxFlags {
  std::string name;
  std::vector<std::string> labels;
  bool rm = false;
  bool detach = false;
  bool cold = false;
  std::string pull = "missing";
  bool insecure = false;
  std::string platform;
  std::string entrypoint;
  bool entrypoint_set = false;
  std::vector<std::string> copies, mkdirs, writes, deletes;
  std::string chown;
  std::string chmod;
  std::string idle_timeout;
  std::string max_duration;
  std::string log_size;
  std::vector<std::string> volumes, tmpfs;
  NetworkFlags network;
  std::vector<std::string> secrets;  // --secret NAME@HOST[,HOST...]
  std::string on_secret_violation;   // empty: block
  std::string from_snapshot;
};

struct Flags {
  VmFlags vm;
  SandboxFlags sb;
  ExecFlags exec;
  std::vector<std::string> ids;
  double stop_timeout_s = 10;
  bool force = false;
  bool quiet = false;
  std::string format;
  bool follow = false;
  bool to_disk = false;
  std::int64_t since_seq = 0;
  CLI::App* run = nullptr;
  CLI::App* create = nullptr;
  CLI::App* start = nullptr;
  CLI::App* stop = nullptr;
  CLI::App* restart = nullptr;
  CLI::App* pause = nullptr;
  CLI::App* resume = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* logs = nullptr;
  CLI::App* events = nullptr;
  CLI::App* exec_cmd = nullptr;
};

Flags& flags() {
  static Flags f;
  return f;
}

void add_vm_flags(CLI::App* cmd, VmFlags& f) {
  cmd->add_option("--rootfs-dir", f.rootfs_dir, "Boot from this directory instead of an image (packed into a cached EROFS image)");
  cmd->add_option("--rootfs-image", f.rootfs_image, "Boot from this ext4 or EROFS image (read-only, under a fresh upper)");
  cmd->add_flag("--writable-root", f.writable_root, "Boot --rootfs-image as the only, writable root");
  cmd->add_option("--cpus", f.cpus, "Virtual CPUs")->capture_default_str();
  cmd->add_option("--cpu-weight", f.cpu_weight,
                  "Share of contended host CPUs against other sandboxes, 1-10000 (cgroup cpu.weight)")
      ->capture_default_str();
  cmd->add_option("--io-weight", f.io_weight,
                  "Share of contended host disks against other sandboxes, 1-10000 (cgroup io.weight; needs a kernel "
                  "with a weight, e.g. the BFQ scheduler)");
  cmd->add_option("--memory", f.memory_mib, "Guest memory in MiB")->capture_default_str();
  cmd->add_option("--disk-size", f.disk_size_mib, "Writable disk size in MiB (sparse)")->capture_default_str();
  cmd->add_option("--accel", f.accel, "auto, kvm or tcg")->capture_default_str();
  cmd->add_option("--hostname", f.hostname, "Guest hostname (default moat-<id>)");
  cmd->add_option("--boot-timeout", f.boot_timeout_s, "Seconds to wait for the guest")->capture_default_str();
}

void add_exec_flags(CLI::App* cmd, ExecFlags& f) {
  // One value per occurrence (-e A=1 -e B=2), so the option never swallows
  // the command after it.
  cmd->add_option("-e,--env", f.env, "Set an environment variable (KEY=VALUE, or KEY to pass through)")
      ->allow_extra_args(false);
  cmd->add_option("-w,--workdir", f.workdir, "Working directory in the guest");
  cmd->add_option("-u,--user", f.user, "User: name, uid, name:group or uid:gid");
  cmd->add_flag("-t,--tty", f.tty, "Give the command a terminal");
  cmd->add_flag("-i,--interactive", f.interactive, "Forward stdin to the command");
  cmd->add_option("--timeout", f.timeout_s, "Kill the command after this many seconds");
  cmd->add_option("--ulimit", f.ulimits, "Resource limit NAME=SOFT[:HARD] (nofile, nproc, as, ...)")
      ->allow_extra_args(false);
}

void add_sandbox_flags(CLI::App* cmd, SandboxFlags& f, bool is_run) {
  cmd->add_option("--name", f.name, "Name of the sandbox (unique; default: its id)");
  cmd->add_option("--from-snapshot", f.from_snapshot,
                  "Start from this disk snapshot (moat snapshot create): its root and files; no IMAGE then");
  cmd->add_option("--label", f.labels, "Label KEY=VALUE (repeatable)")->allow_extra_args(false);
  cmd->add_flag("--rm", f.rm,
                is_run ? "Remove the sandbox when it stops (the default for unnamed sandboxes)"
                       : "Remove the sandbox when it stops");
  cmd->add_flag("--cold", f.cold,
                "Boot afresh: no warm start from the template of an earlier boot of the same root, kernel and "
                "resources");
  cmd->add_option("--pull", f.pull, "Pull the image: always, missing or never")->capture_default_str();
  cmd->add_flag("--insecure", f.insecure, "Talk plain HTTP to the image's registry");
  cmd->add_option("--platform", f.platform, "Image platform os/arch[/variant] (default linux/amd64)");
  cmd->add_option("--entrypoint", f.entrypoint, "Replace the image's entrypoint (\"\" clears it)")
      ->each([&f](const std::string&) { f.entrypoint_set = true; });
  cmd->add_option("--copy", f.copies, "Before the first boot, copy HOST:GUEST into the sandbox")->allow_extra_args(false);
  cmd->add_option("--mkdir", f.mkdirs, "Before the first boot, create directory GUEST (with parents)")
      ->allow_extra_args(false);
  cmd->add_option("--write", f.writes, "Before the first boot, write GUEST=TEXT")->allow_extra_args(false);
  cmd->add_option("--delete", f.deletes, "Before the first boot, delete GUEST (hides the image's file)")
      ->allow_extra_args(false);
  cmd->add_option("--chown", f.chown, "Owner UID:GID of what --copy, --mkdir and --write create (default 0:0)");
  cmd->add_option("--chmod", f.chmod, "Octal mode of what --copy, --mkdir and --write create");
  cmd->add_option("-v,--volume", f.volumes, "Share HOST_DIR:GUEST or VOLUME:GUEST; append :ro for read-only, :size=1g to cap it (:ro,size=1g both)")
      ->allow_extra_args(false);
  cmd->add_option("--tmpfs", f.tmpfs, "Mount a tmpfs at GUEST[:SIZE] (64m, 1g; default half the memory)")
      ->allow_extra_args(false);
  cmd->add_option("--idle-timeout", f.idle_timeout, "Stop after this long without a command running (30s, 5m, 2h)");
  cmd->add_option("--max-duration", f.max_duration, "Stop this long after start (30s, 5m, 2h)");
  cmd->add_option("--log-size", f.log_size, "Cap of each log the guest can fill, rotated once (4k to 1g; default 1m)");
  add_network_flags(cmd, f.network, /*policy_only=*/false);
  cmd->add_option("--secret", f.secrets,
                  "Give the guest a placeholder for NAME, replaced by $NAME's value in requests to HOST "
                  "(NAME@HOST[,HOST...]; repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--on-secret-violation", f.on_secret_violation,
                  "When a placeholder goes to another host: block (reset it; the default) or block-and-stop");
  if (is_run) cmd->add_flag("-d,--detach", f.detach, "Start the sandbox and leave it running; print its id");
}

// Whole seconds, as the sandbox's limits are.
Result<Duration> parse_duration(const std::string& flag, const std::string& text) {
  if (text.empty()) return Duration::zero();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  std::string unit = end ? std::string(end) : std::string();
  double scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : -1;
  if (errno != 0 || end == text.c_str() || scale < 0 || !std::isfinite(v) || v < 0 || v * scale > 366.0 * 86400)
    return make_error(flag + " " + text + ": expected a duration such as 90, 30s, 5m or 2h (at most a year)", EINVAL);
  return Duration(std::chrono::seconds(static_cast<std::int64_t>(std::ceil(v * scale))));
}

Result<PullPolicy> parse_pull(const std::string& text) {
  if (text == "missing") return PullPolicy::kMissing;
  if (text == "always") return PullPolicy::kAlways;
  if (text == "never") return PullPolicy::kNever;
  return make_error("--pull " + text + ": expected always, missing or never", EINVAL);
}

// The patch options in command-line order (CLI11 keeps each option's values
// apart, so the order comes from parse_order()), with --chown/--chmod as
// defaults for what they create.
Result<std::vector<RootPatch>> patches_from(CLI::App* cmd, const SandboxFlags& f) {
  using Kind = RootPatch::Kind;
  struct Source {
    const char* flag;
    Kind kind;
    const std::vector<std::string>* values;
    std::size_t next = 0;
  };
  std::vector<Source> sources = {{"--copy", Kind::kCopy, &f.copies},
                                 {"--mkdir", Kind::kMkdir, &f.mkdirs},
                                 {"--write", Kind::kWrite, &f.writes},
                                 {"--delete", Kind::kRemove, &f.deletes}};
  std::vector<RootPatch> patches;
  for (const CLI::Option* opt : cmd->parse_order()) {
    for (auto& src : sources) {
      if (opt->get_name() != src.flag || src.next >= src.values->size()) continue;
      const std::string& arg = (*src.values)[src.next++];
      auto p = parse_root_patch(src.kind, arg);
      if (!p) return p.error().wrap(std::string(src.flag) + " " + arg);
      patches.push_back(std::move(*p));
    }
  }
  PatchDefaults defaults;
  if (!f.chown.empty()) {
    auto c = parse_patch_owner(f.chown);
    if (!c) return c.error().wrap("--chown " + f.chown);
    defaults = *c;
  }
  if (!f.chmod.empty()) {
    auto m = parse_patch_mode(f.chmod);
    if (!m) return m.error().wrap("--chmod " + f.chmod);
    defaults.mode = *m;
  }
  apply_patch_defaults(patches, defaults);
  return patches;
}

Result<std::map<std::string, std::string>> parse_labels(const std::vector<std::string>& labels) {
  std::map<std::string, std::string> out;
  for (const auto& l : labels) {
    auto eq = l.find('=');
    if (eq == 0 || l.empty()) return make_error("--label " + l + ": expected KEY=VALUE", EINVAL);
    if (!is_utf8(l)) return make_error("--label " + lossy_utf8(l) + ": labels must be UTF-8 text", EINVAL);
    out[l.substr(0, eq)] = eq == std::string::npos ? std::string() : l.substr(eq + 1);
  }
  return out;
}

// The positional words of run/create/exec: those before `--` (CLI11 leaves
// them, from the first one on, in remaining(); an option there is one CLI11
// did not know) and those after it.
struct Words {
  std::vector<std::string> before;
  std::vector<std::string> after;
};

Result<Words> positional_words(CLI::App* cmd, const std::vector<std::string>& after) {
  Words w{cmd->remaining(), after};
  if (!w.before.empty() && w.before[0].size() > 1 && w.before[0][0] == '-')
    return make_error("unknown option " + w.before[0] + " (see moat " + cmd->get_name() + " --help)", EINVAL);
  return w;
}

// The positional words: [IMAGE] [COMMAND...], unless a root was given by
// option, in which case they are all the command.
Result<SandboxOptions> sandbox_options(const Flags& f, CLI::App* cmd, const Words& words) {
  SandboxOptions o;
  const VmFlags& v = f.vm;
  o.rootfs_dir = v.rootfs_dir;
  o.rootfs_image = v.rootfs_image;
  o.writable_root = v.writable_root;
  o.cpus = v.cpus;
  o.cpu_weight = v.cpu_weight;
  o.io_weight = v.io_weight;
  o.memory_mib = v.memory_mib;
  o.disk_size_mib = v.disk_size_mib;
  MOAT_ASSIGN_OR_RETURN(o.accel, parse_accel(v.accel));
  o.hostname = v.hostname;
  MOAT_ASSIGN_OR_RETURN(o.boot_timeout, seconds_flag("--boot-timeout", v.boot_timeout_s, 1, 3600));
  // The image is the first word before `--`, unless an option gave the root.
  std::size_t first_command = 0;
  if (v.rootfs_dir.empty() && v.rootfs_image.empty() && f.sb.from_snapshot.empty() && !words.before.empty()) {
    o.image = words.before[0];
    first_command = 1;
  }
  o.command.assign(words.before.begin() + static_cast<std::ptrdiff_t>(first_command), words.before.end());
  o.command.insert(o.command.end(), words.after.begin(), words.after.end());
  const SandboxFlags& s = f.sb;
  MOAT_ASSIGN_OR_RETURN(o.pull, parse_pull(s.pull));
  o.insecure_registry = s.insecure;
  o.platform = s.platform;
  o.name = s.name;
  o.from_snapshot = s.from_snapshot;
  MOAT_ASSIGN_OR_RETURN(o.labels, parse_labels(s.labels));
  if (s.entrypoint_set)
    o.entrypoint = s.entrypoint.empty() ? std::vector<std::string>{} : std::vector<std::string>{s.entrypoint};
  MOAT_ASSIGN_OR_RETURN(o.patches, patches_from(cmd, s));
  MOAT_ASSIGN_OR_RETURN(o.idle_timeout, parse_duration("--idle-timeout", s.idle_timeout));
  MOAT_ASSIGN_OR_RETURN(o.max_duration, parse_duration("--max-duration", s.max_duration));
  if (!s.log_size.empty()) {
    auto size = parse_byte_size(s.log_size);
    if (!size) return size.error().wrap("--log-size");
    if (*size == 0) return make_error("--log-size must be between 4k and 1g", EINVAL);
    o.log_max_bytes = *size;
  }
  o.auto_remove = s.rm;
  o.warm_start = !s.cold;
  for (const auto& v : s.volumes) {
    MOAT_ASSIGN_OR_RETURN(auto m, parse_volume_mount(v));
    o.volumes.push_back(std::move(m));
  }
  for (const auto& t : s.tmpfs) {
    MOAT_ASSIGN_OR_RETURN(auto m, parse_tmpfs_mount(t));
    o.tmpfs.push_back(std::move(m));
  }
  NetworkFlags network = s.network;
  network.secrets_given = !s.secrets.empty();
  MOAT_ASSIGN_OR_RETURN(o.network, network_options_from(network));
  for (const auto& spec : s.secrets) {
    std::string name = spec.substr(0, spec.find('@'));
    // The value comes from the environment, never from the command line,
    // where other users of the host could read it.
    const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
    if (!value)
      return make_error("--secret " + spec + ": the environment variable " + name +
                            " is not set (the value is read from it, never from the command line)",
                        EINVAL);
    MOAT_ASSIGN_OR_RETURN(auto secret, parse_secret(spec, value));
    o.secrets.push_back(std::move(secret));
  }
  if (!s.on_secret_violation.empty()) {
    MOAT_ASSIGN_OR_RETURN(o.on_secret_violation, parse_secret_violation(s.on_secret_violation));
  }
  return o;
}


// What `moat inspect` and `moat ls --json` show (moat/json.h): text for
// people and scripts. The database keeps the same fields in another form
// (sandbox_db.cpp spec_json: reversible bytes, no id, state or times), and
// the two must be free to change apart: one is a display, the other a
// stored format that older records have to keep reading.
Json to_json(const SandboxInfo& i) { return Json::parse(to_json_text(i)); }

int cmd_run(Flags& f, const std::vector<std::string>& after, Duration stop_timeout) {
  auto positional = positional_words(f.run, after);
  if (!positional) return fail(positional.error());
  const auto& words = *positional;
  auto o = sandbox_options(f, f.run, words);
  if (!o) return fail(o.error());
  // The command's own flags (-e, --timeout, ...) are checked before a
  // sandbox is created or booted, so a mistake there leaves nothing behind.
  ExecFlags check = f.exec;
  check.command = o->command.empty() ? std::vector<std::string>{"sh"} : o->command;
  if (auto e = exec_options_from(check); !e) return fail(e.error());
  if (o->image.empty() && o->from_snapshot.empty() && o->command.empty() && !f.sb.detach)
    return fail(Error{EINVAL, "no command given: moat run [OPTIONS] [IMAGE] [COMMAND...] (or the command after --)"});
  // Docker's default: an unnamed sandbox leaves nothing behind.
  if (f.sb.name.empty()) o->auto_remove = true;
  // A pull the create needs shows its progress, as `moat image pull` does.
  PullProgressLine pull_line(::isatty(STDERR_FILENO));
  o->on_pull_progress = pull_line.callback();
  if (f.sb.detach) {
    o->auto_remove = f.sb.rm;
    auto info = create_sandbox(*o);
    pull_line.finish();
    if (!info) return fail(info.error());
    if (auto st = start_sandbox(info->id); !st) return fail(st.error());
    std::printf("%s\n", info->id.c_str());
    return 0;
  }
  o->ephemeral = true;
  auto sb = Sandbox::create(*o);
  pull_line.finish();
  if (!sb) return fail(sb.error());
  auto info = sb->info();
  if (!info) return fail(info.error());
  ExecFlags ef = f.exec;
  ef.command = info->command;
  if (ef.command.empty()) {
    (void)sb->stop(Duration::zero());
    print_error("no command to run: the image has none; give one after the image (or after --)");
    return kExitMoatError;
  }
  int code = run_in_sandbox(*sb, ef);
  if (auto st = sb->stop(stop_timeout); !st) {
    print_error(st.error().message);
    if (code == 0) code = kExitMoatError;
  }
  return code;
}

int cmd_create(Flags& f, const std::vector<std::string>& after) {
  auto positional = positional_words(f.create, after);
  if (!positional) return fail(positional.error());
  const auto& words = *positional;
  auto o = sandbox_options(f, f.create, words);
  if (!o) return fail(o.error());
  PullProgressLine pull_line(::isatty(STDERR_FILENO));
  o->on_pull_progress = pull_line.callback();
  auto info = create_sandbox(*o);
  pull_line.finish();
  if (!info) return fail(info.error());
  std::printf("%s\n", info->id.c_str());
  return 0;
}

// Applies `op` to every id, reporting each failure; prints the ids that worked.
template <class Op>
int for_each_id(const std::vector<std::string>& ids, Op op) {
  int code = 0;
  for (const auto& id : ids) {
    if (auto st = op(id); !st) {
      print_error(st.error().message);
      code = kExitMoatError;
      continue;
    }
    std::printf("%s\n", id.c_str());
  }
  return code;
}

int cmd_ls(const Flags& f) {
  auto labels = parse_labels(f.sb.labels);
  if (!labels) return fail(labels.error());
  auto list = list_sandboxes(*labels);
  if (!list) return fail(list.error());
  if (f.format == "json") {
    Json arr = Json::array();
    for (const auto& i : *list) arr.push_back(to_json(i));
    std::printf("%s\n", dump_lossy(arr, 2).c_str());  // argv and paths are bytes
    return 0;
  }
  if (!f.format.empty() && f.format != "table") return fail(Error{EINVAL, "--format " + f.format + ": expected table or json"});
  if (f.quiet) {
    for (const auto& i : *list) std::printf("%s\n", i.name.c_str());
    return 0;
  }
  std::printf("%-12s  %-20s  %-30s  %-8s  %s\n", "ID", "NAME", "IMAGE", "STATE", "CREATED");
  for (const auto& i : *list)
    std::printf("%-12s  %-20s  %-30s  %-8s  %s\n", i.id.c_str(), i.name.c_str(),
                i.image.empty() ? "-" : i.image.c_str(), i.paused ? "paused" : i.saved ? "saved" : to_string(i.state).c_str(),
                utc_time_text(i.created_at).c_str());
  return 0;
}

int cmd_inspect(const Flags& f) {
  return print_inspected(f.ids, [](const std::string& id) { return inspect_sandbox(id); },
                         [](const SandboxInfo& i) { return to_json(i); });
}

// The exec history line by line, as people read it. Argv and messages are
// printed as the bytes they were.
std::string exec_line(const ExecEvent& e) {
  if (e.event.empty()) return e.message;  // a line that could not be read, as stored
  if (e.event == "network") return utc_time_text(e.time) + " " + e.message;
  std::string out = utc_time_text(e.time) + " [" + std::to_string(e.stream) + "] ";
  if (e.event == "exec") {
    out += "exec";
    for (const auto& a : e.argv) out += " " + a;
    if (e.argv_truncated) out += " ...";
  } else if (e.event == "exit") {
    out += e.signal ? "killed by signal " + std::to_string(e.signal) : "exit " + std::to_string(e.code);
    if (e.timed_out) out += " (timed out)";
  } else {
    out += e.event + ": " + e.message;
  }
  return out;
}

int cmd_logs(const Flags& f) {
  LogCallbacks cb;
  bool commands = false;
  cb.on_console = [&](std::string_view s) {
    // The history comes after the console; what the console gains while
    // following comes after it.
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  cb.on_exec_event = [&](const ExecEvent& e) {
    if (!commands) std::printf("--- commands ---\n");
    commands = true;
    std::printf("%s\n", exec_line(e).c_str());
    std::fflush(stdout);
  };
  if (auto st = read_sandbox_logs(f.ids.at(0), cb, f.follow); !st) return fail(st.error());
  return 0;
}

// One line per event, or one JSON object per line (--format json).
int cmd_events(const Flags& f) {
  if (!f.format.empty() && f.format != "json" && f.format != "table")
    return fail(Error{EINVAL, "--format " + f.format + ": expected table or json"});
  bool json = f.format == "json";
  if (f.since_seq < 0)
    return fail(Error{EINVAL, "--since " + std::to_string(f.since_seq) + ": expected a sequence number (0 or more)"});
  SandboxEventOptions o;
  o.after = static_cast<std::uint64_t>(f.since_seq);
  o.follow = f.follow;
  auto st = watch_sandbox_events(o, [&](const SandboxEvent& e) {
    if (json) {
      std::printf("%s\n", to_json_text(e).c_str());
    } else {
      std::string line = utc_time_text(e.time) + "  " + std::to_string(e.seq) + "  " + to_string(e.kind) + "  " + e.name +
                         " (" + e.id + ")";
      if (!e.reason.empty()) line += ": " + e.reason;
      std::printf("%s\n", line.c_str());
    }
    // A reader that went away (a closed pipe) ends a follow.
    return std::fflush(stdout) == 0;
  });
  if (!st) return fail(st.error());
  return 0;
}

int cmd_exec(Flags& f, const std::vector<std::string>& after) {
  auto positional = positional_words(f.exec_cmd, after);
  if (!positional) return fail(positional.error());
  const auto& words = *positional;
  if (words.before.empty()) return fail(Error{EINVAL, "exec needs a sandbox (before --) and a command"});
  ExecFlags ef = f.exec;
  ef.command.assign(words.before.begin() + 1, words.before.end());
  ef.command.insert(ef.command.end(), words.after.begin(), words.after.end());
  // Bad flags are reported as such, whether or not the sandbox exists.
  if (auto e = exec_options_from(ef); !e) return fail(e.error());
  auto sb = Sandbox::open(words.before[0]);
  if (!sb) return fail(sb.error());
  return run_in_sandbox(*sb, ef);
}

}  // namespace

std::vector<std::string> split_command(int& argc, char** argv) {
  std::vector<std::string> after;
  if (argc < 2) return after;
  std::string sub = argv[1];
  if (sub != "run" && sub != "create" && sub != "exec") return after;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") != 0) continue;
    for (int j = i + 1; j < argc; ++j) after.emplace_back(argv[j]);
    argc = i;
    break;
  }
  return after;
}

void register_sandbox_commands(CLI::App& app) {
  Flags& f = flags();
  f.run = app.add_subcommand("run", "Run a command in a new sandbox: moat run [OPTIONS] [IMAGE] [COMMAND...]");
  add_vm_flags(f.run, f.vm);
  add_sandbox_flags(f.run, f.sb, /*is_run=*/true);
  add_exec_flags(f.run, f.exec);
  f.run->add_option("--stop-timeout", f.stop_timeout_s, "Seconds a named sandbox gets to power off after its command")
      ->capture_default_str();
  f.run->prefix_command();

  f.create = app.add_subcommand("create", "Create a sandbox (not started); prints its id: moat create [OPTIONS] [IMAGE] [COMMAND...]");
  add_vm_flags(f.create, f.vm);
  add_sandbox_flags(f.create, f.sb, /*is_run=*/false);
  f.create->prefix_command();

  f.start = app.add_subcommand("start", "Start sandboxes");
  f.start->add_option("sandbox", f.ids, "Sandbox ids or names")->required();

  f.stop = app.add_subcommand("stop", "Stop sandboxes (the guest powers off cleanly; killed after --timeout)");
  f.stop->add_option("sandbox", f.ids, "Sandbox ids or names")->required();
  f.stop->add_option("--timeout", f.stop_timeout_s,
                     "Seconds to wait for a clean power-off; 0: none, the processes are killed at once and what "
                     "they wrote is flushed before the VM ends")
      ->capture_default_str();

  f.pause = app.add_subcommand("pause", "Pause sandboxes: their vCPUs stop where they are, memory kept");
  f.pause->add_option("sandbox", f.ids, "Sandbox ids or names")->required();
  f.pause->add_flag("--to-disk", f.to_disk,
                    "Save the whole VM to the sandbox's directory and end it: no memory or process is held "
                    "until resume (or start) restores it; stop discards it");
  f.resume = app.add_subcommand("resume", "Resume paused sandboxes, or restore ones paused to disk "
                                          "(their clock is set from the host's)");
  f.resume->add_option("sandbox", f.ids, "Sandbox ids or names")->required();
  f.restart = app.add_subcommand("restart", "Stop and start sandboxes");
  f.restart->add_option("sandbox", f.ids, "Sandbox ids or names")->required();
  f.restart->add_option("--timeout", f.stop_timeout_s, "Seconds to wait for a clean power-off")->capture_default_str();

  f.rm = app.add_subcommand("rm", "Remove sandboxes (disk, logs, state)");
  f.rm->add_option("sandbox", f.ids, "Sandbox ids or names")->required();
  f.rm->add_flag("-f,--force", f.force, "Kill and remove running sandboxes too");

  f.ls = app.add_subcommand("ls", "List sandboxes");
  f.ls->add_flag("-q,--quiet", f.quiet, "Print names only");
  f.ls->add_option("--format", f.format, "table or json");
  f.ls->add_option("--label", f.sb.labels, "Only sandboxes with label KEY=VALUE (repeatable)")->allow_extra_args(false);

  f.inspect = app.add_subcommand("inspect", "Show sandboxes as JSON");
  f.inspect->add_option("sandbox", f.ids, "Sandbox ids or names")->required();

  f.logs = app.add_subcommand("logs", "Show a sandbox's console and command history");
  f.logs->add_option("sandbox", f.ids, "Sandbox id or name")->required()->expected(1);
  f.logs->add_flag("-f,--follow", f.follow, "Keep following the console until the sandbox stops");

  f.events = app.add_subcommand("events", "Show what happened to sandboxes: created, started, stopped, crashed, removed");
  f.events->add_flag("-f,--follow", f.follow, "Keep showing new events as they happen");
  f.events->add_option("--since", f.since_seq, "Only events after this sequence number");
  f.events->add_option("--format", f.format, "table or json (one object per line)");

  f.exec_cmd = app.add_subcommand("exec", "Run a command in a running sandbox: moat exec [OPTIONS] SANDBOX COMMAND...");
  add_exec_flags(f.exec_cmd, f.exec);
  f.exec_cmd->prefix_command();
}

namespace {

// The longest a stop may wait for a clean power-off (then QEMU is killed).
constexpr double kMaxStopTimeoutS = 86400;

// --stop-timeout of run, --timeout of stop and restart.
Result<Duration> stop_timeout(const Flags& f) {
  const char* flag = *f.run ? "--stop-timeout" : "--timeout";
  return seconds_flag(flag, f.stop_timeout_s, 0, kMaxStopTimeoutS);
}

}  // namespace

int run_sandbox_command(const std::vector<std::string>& after) {
  Flags& f = flags();
  Duration timeout{0};
  if (*f.run || *f.stop || *f.restart) {
    auto given = stop_timeout(f);
    if (!given) return fail(given.error());
    timeout = *given;
  }
  if (*f.run) return cmd_run(f, after, timeout);
  if (*f.create) return cmd_create(f, after);
  if (*f.exec_cmd) return cmd_exec(f, after);
  if (*f.start) return for_each_id(f.ids, [](const std::string& id) { return start_sandbox(id); });
  if (*f.stop) return for_each_id(f.ids, [&](const std::string& id) { return stop_sandbox(id, timeout); });
  if (*f.restart) return for_each_id(f.ids, [&](const std::string& id) { return restart_sandbox(id, timeout); });
  if (*f.pause) return for_each_id(f.ids, [&](const std::string& id) { return pause_sandbox(id, {f.to_disk}); });
  if (*f.resume) return for_each_id(f.ids, [](const std::string& id) { return resume_sandbox(id); });
  if (*f.rm) return for_each_id(f.ids, [&](const std::string& id) { return remove_sandbox(id, f.force); });
  if (*f.ls) return cmd_ls(f);
  if (*f.inspect) return cmd_inspect(f);
  if (*f.logs) return cmd_logs(f);
  if (*f.events) return cmd_events(f);
  return -1;
}

}  // namespace moat::cli
