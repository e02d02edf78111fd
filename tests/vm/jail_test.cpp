// What a running sandbox's QEMU may do (docs/security.md): under TCG the
// guest runs inside that process, so it runs as a user of its own, in
// namespaces of its own, in a read-only root holding only its files; it
// holds no capability, cannot gain one, and every thread is under QEMU's
// seccomp filter.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <map>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string status_field(const std::string& status, const std::string& name) {
  std::istringstream lines(status);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + ":", 0) != 0) continue;
    std::string value = line.substr(name.size() + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return "(none)";
}

std::string link_of(const std::string& path) {
  char target[4096];
  ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "";
}

// What QEMU's root must hold, and nothing more: /usr, the host root's
// entries that lead into it (which differ between machines), dev, and the
// two files QEMU reads by name.
std::vector<std::string> expected_root_entries() {
  // proc: QEMU opens its RAM's memfd as /proc/self/fd/N.
  std::vector<std::string> names = {"dev", "initrd", "kernel", "proc", "usr"};
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    struct stat st {};
    if (::lstat((std::string("/") + name).c_str(), &st) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// A started busybox sandbox and its processes.
struct Running {
  std::string id, dir, shim_pid;
  pid_t qemu = -1;
};

void start_sandbox(const std::vector<std::string>& flags, Running* r) {
  std::vector<std::string> args = {"create"};
  args.insert(args.end(), flags.begin(), flags.end());
  args.insert(args.end(), {"--rootfs-dir", busybox_rootfs()});
  auto created = run_moat(args);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  r->id = created.out.substr(0, created.out.find('\n'));
  ASSERT_EQ(run_moat({"start", r->id}).exit_code, 0);
  r->dir = test_home() + "/sandboxes/" + r->id;
  r->shim_pid = read_file(r->dir + "/shim.pid");
  r->shim_pid = r->shim_pid.substr(0, r->shim_pid.find('\n'));
  r->qemu = qemu_of(r->dir);
  ASSERT_GT(r->qemu, 0) << "QEMU of " << r->dir;
}

TEST(VmJail, QemuRunsAsItsOwnUserInItsOwnNamespacesAndRoot) {
  Running s;
  ASSERT_NO_FATAL_FAILURE(start_sandbox({}, &s));
  const std::string& id = s.id;
  const std::string& shim_pid = s.shim_pid;
  pid_t qemu = s.qemu;
  std::string proc = "/proc/" + std::to_string(qemu);
  std::string status = read_file(proc + "/status");
  // A uid of its own: not root, not the shim's, the same for every id.
  std::istringstream uids(status_field(status, "Uid"));
  std::string real, effective, saved, fs;
  uids >> real >> effective >> saved >> fs;
  EXPECT_NE(real, "0");
  EXPECT_EQ(effective, real);
  EXPECT_EQ(saved, real);
  EXPECT_EQ(fs, real);
  EXPECT_NE(real, status_field(read_file("/proc/" + shim_pid + "/status"), "Uid").substr(0, real.size()));
  EXPECT_EQ(status_field(status, "Groups"), "");
  // Process 1 of a PID namespace of its own.
  std::istringstream nspid(status_field(status, "NSpid"));
  std::string outer, inner;
  nspid >> outer >> inner;
  EXPECT_EQ(inner, "1") << status_field(status, "NSpid");
  for (const char* ns : {"mnt", "pid", "net", "ipc", "uts"}) {
    std::string theirs = link_of(proc + "/ns/" + ns);
    EXPECT_FALSE(theirs.empty()) << ns;
    EXPECT_NE(theirs, link_of(std::string("/proc/self/ns/") + ns)) << ns;
    EXPECT_NE(theirs, link_of("/proc/" + shim_pid + "/ns/" + ns)) << ns;
  }
  // Its root holds only its files; disks and sockets are descriptors.
  EXPECT_EQ(sorted(dir_entries(proc + "/root")), expected_root_entries());
  EXPECT_EQ(sorted(dir_entries(proc + "/root/dev")), (std::vector<std::string>{"null", "urandom"}));
  // Its /proc shows its own PID namespace: QEMU alone.
  std::vector<std::string> pids;
  for (const auto& e : dir_entries(proc + "/root/proc"))
    if (!e.empty() && std::all_of(e.begin(), e.end(), [](char c) { return c >= '0' && c <= '9'; })) pids.push_back(e);
  EXPECT_EQ(pids, (std::vector<std::string>{"1"}));
  EXPECT_EQ(link_of(proc + "/root/lib"), link_of("/lib"));
  struct stat kernel_seen {};
  ASSERT_EQ(::stat((proc + "/root/kernel").c_str(), &kernel_seen), 0);
  EXPECT_TRUE(S_ISREG(kernel_seen.st_mode));
  EXPECT_GT(kernel_seen.st_size, 1 << 20);
  // Read-only, all of it: not even root on the host can add a file there.
  for (const char* where : {"/root/planted", "/root/usr/planted", "/root/dev/planted"}) {
    int rc = ::mkdir((proc + where).c_str(), 0700);
    int err = errno;
    EXPECT_EQ(rc, -1) << where;
    EXPECT_EQ(err, EROFS) << where;
  }
  // The guest works under all that: disks, network, console.
  auto o = run_moat({"exec", id, "--", "sh", "-c", "echo ok > /written && cat /written"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "ok\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

// The group of a sandbox's QEMU, per controller, from /proc/PID/cgroup:
// "memory" -> its directory (v1: one hierarchy per controller; v2: one).
std::map<std::string, std::string> cgroup_dirs(pid_t pid) {
  std::map<std::string, std::string> dirs;
  std::istringstream lines(read_file("/proc/" + std::to_string(pid) + "/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    std::size_t a = line.find(':'), b = line.find(':', a + 1);
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      dirs["v2"] = "/sys/fs/cgroup" + path;
      continue;
    }
    std::istringstream names(controllers);
    for (std::string c; std::getline(names, c, ',');) dirs[c] = "/sys/fs/cgroup/" + controllers + path;
  }
  return dirs;
}

std::string first_line(const std::string& path) {
  std::string text = read_file(path);
  return text.substr(0, text.find('\n'));
}

TEST(VmJail, QemuIsInAGroupOfItsOwnWithTheSandboxLimits) {
  Running s;
  ASSERT_NO_FATAL_FAILURE(start_sandbox({"--memory", "384", "--cpus", "1", "--cpu-weight", "300"}, &s));
  const std::string& id = s.id;
  pid_t qemu = s.qemu;
  auto dirs = cgroup_dirs(qemu);
  // The guest's RAM + 256 MiB for QEMU + the 16 MiB TCG code cache;
  // 512 tasks; one CPU's time per period; the CPU weight asked for.
  const std::string memory_max = std::to_string((384ull + 256 + 16) << 20);
  std::vector<std::string> groups;
  bool v2 = !dirs["memory"].ends_with("/moat-" + id);  // no v1 memory group of its own
  if (v2) {
    ASSERT_TRUE(dirs["v2"].ends_with("/moat-" + id)) << dirs["v2"];
    EXPECT_EQ(first_line(dirs["v2"] + "/memory.max"), memory_max);
    EXPECT_EQ(first_line(dirs["v2"] + "/pids.max"), "512");
    EXPECT_EQ(first_line(dirs["v2"] + "/cpu.max"), "100000 100000");
    EXPECT_EQ(first_line(dirs["v2"] + "/cpu.weight"), "300");
    groups = {dirs["v2"]};
  } else {
    for (const char* c : {"memory", "pids", "cpu"}) {
      EXPECT_TRUE(dirs[c].ends_with("/moat-" + id)) << c << ": " << dirs[c];
      groups.push_back(dirs[c]);
    }
    EXPECT_EQ(first_line(dirs["memory"] + "/memory.limit_in_bytes"), memory_max);
    EXPECT_GT(std::stoull("0" + first_line(dirs["memory"] + "/memory.usage_in_bytes")), 16ull << 20);
    EXPECT_EQ(first_line(dirs["pids"] + "/pids.max"), "512");
    EXPECT_GT(std::stoi("0" + first_line(dirs["pids"] + "/pids.current")), 1);
    EXPECT_EQ(first_line(dirs["cpu"] + "/cpu.cfs_quota_us"), "100000");
    EXPECT_EQ(first_line(dirs["cpu"] + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(first_line(dirs["cpu"] + "/cpu.shares"), "3072") << "weight 300 as v1 shares (1024 = 100)";
  }
  // Only QEMU is in it: not the shim.
  for (const auto& g : groups) EXPECT_EQ(first_line(g + "/cgroup.procs"), std::to_string(qemu)) << g;
  auto o = run_moat({"exec", id, "--", "echo", "ok"});
  EXPECT_EQ(o.out, "ok\n") << o.err;
  // Gone with the sandbox, also when its shim was killed.
  ASSERT_EQ(::kill(std::stoi(s.shim_pid), SIGKILL), 0);
  for (int i = 0; i < 100 && ::kill(qemu, 0) == 0; ++i) ::usleep(50000);
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  struct stat st {};
  for (const auto& g : groups) EXPECT_NE(::stat(g.c_str(), &st), 0) << g << " left behind";
}

// --io-weight: where this process's blkio (v1) or io (v2) group offers a
// weight, QEMU's group carries it; where the kernel has none (this
// project's CI host: no BFQ, v1 blkio with throttling files only), the
// start is refused with the reason and nothing is left behind, rather than
// a sandbox running without the weight (or without its other limits).
TEST(VmJail, AnIoWeightIsAppliedOrTheStartRefusedSayingWhy) {
  auto dirs = cgroup_dirs(::getpid());
  bool v2 = dirs.count("v2") && !dirs.count("memory");
  std::string own = v2 ? dirs["v2"] : dirs["blkio"];
  bool offered = false;
  for (const char* f : {"io.bfq.weight", "io.weight", "blkio.bfq.weight", "blkio.weight"})
    offered = offered || ::access((own + "/" + f).c_str(), F_OK) == 0;
  if (!offered) {
    auto o = run_moat({"run", "--rm", "--name", "iow", "--io-weight", "300", "--rootfs-dir", busybox_rootfs(), "--",
                       "true"});
    EXPECT_EQ(o.exit_code, 125);
    EXPECT_NE(o.err.find(std::string("--io-weight: this host's kernel offers no I/O weight (") +
                         (v2 ? "cgroup v2's io controller has neither io.bfq.weight nor io.weight"
                             : "cgroup v1's blkio has neither blkio.bfq.weight nor blkio.weight")),
              std::string::npos)
        << o.err;
    auto kept = run_moat({"inspect", "iow"});
    EXPECT_EQ(kept.exit_code, 125) << "the refused sandbox was kept: " << kept.out;
    EXPECT_NE(kept.err.find("no such sandbox"), std::string::npos) << kept.err;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(own, ec))
      EXPECT_FALSE(e.path().filename().string().rfind("moat-", 0) == 0 && e.is_directory())
          << e.path() << " left behind";
    return;
  }
  Running s;
  ASSERT_NO_FATAL_FAILURE(start_sandbox({"--io-weight", "300"}, &s));
  auto qemu_dirs = cgroup_dirs(s.qemu);
  std::string group = v2 ? qemu_dirs["v2"] : qemu_dirs["blkio"];
  ASSERT_TRUE(group.ends_with("/moat-" + s.id)) << group;
  std::string value;
  for (const char* f : {"io.bfq.weight", "blkio.bfq.weight", "io.weight", "blkio.weight"}) {
    if (::access((group + "/" + f).c_str(), F_OK) == 0) {
      value = first_line(group + "/" + f);
      break;
    }
  }
  EXPECT_NE(value.find("300"), std::string::npos) << value;
  EXPECT_EQ(run_moat({"rm", "-f", s.id}).exit_code, 0);
}

// A QEMU that goes over its memory limit (here: the limit lowered under a
// running guest, as a QEMU leak or a code-cache blow-up would look) is
// killed by the kernel inside its group, and the sandbox says why.
TEST(VmJail, QemuOverItsMemoryLimitIsKilledAndTheSandboxSaysWhy) {
  Running s;
  ASSERT_NO_FATAL_FAILURE(start_sandbox({"--memory", "512"}, &s));
  auto dirs = cgroup_dirs(s.qemu);
  bool v2 = !dirs["memory"].ends_with("/moat-" + s.id);
  std::string group = v2 ? dirs["v2"] : dirs["memory"];
  ASSERT_TRUE(group.ends_with("/moat-" + s.id)) << group;
  std::string usage = first_line(group + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
  std::string lower = std::to_string(std::stoull(usage) + (32ull << 20));
  std::ofstream(group + (v2 ? "/memory.max" : "/memory.limit_in_bytes")) << lower;
  ASSERT_EQ(first_line(group + (v2 ? "/memory.max" : "/memory.limit_in_bytes")), lower);
  // The guest touches 400 MiB of its own RAM: QEMU has to back it.
  auto o = run_moat({"exec", s.id, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=400M", "count=1"});
  EXPECT_EQ(o.exit_code, 125) << o.out << o.err;
  EXPECT_NE(o.err.find("over its memory limit"), std::string::npos) << o.err;
  auto inspected = run_moat({"inspect", s.id});
  EXPECT_NE(inspected.out.find("\"state\": \"crashed\""), std::string::npos) << inspected.out;
  EXPECT_NE(inspected.out.find("QEMU killed by the kernel for going over its memory limit (784 MiB: the guest's RAM "
                               "and QEMU's own) unexpectedly"),
            std::string::npos)
      << inspected.out;
  EXPECT_EQ(run_moat({"rm", "-f", s.id}).exit_code, 0);
  struct stat st {};
  EXPECT_NE(::stat(group.c_str(), &st), 0) << group << " left behind";
}

TEST(VmJail, QemuHoldsNoCapabilityAndEveryThreadIsFiltered) {
  Running s;
  ASSERT_NO_FATAL_FAILURE(start_sandbox({}, &s));
  const std::string& id = s.id;
  const std::string& shim_pid = s.shim_pid;
  pid_t qemu = s.qemu;
  std::string status = read_file("/proc/" + std::to_string(qemu) + "/status");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(status_field(status, set), "0000000000000000") << set;
  EXPECT_EQ(status_field(status, "NoNewPrivs"), "1");
  // Neither QEMU (the guest's RAM) nor the shim (secrets' values) dumps core.
  for (const std::string& pid : {std::to_string(qemu), shim_pid}) {
    std::string limits = read_file("/proc/" + pid + "/limits");
    std::size_t core = limits.find("Max core file size");
    ASSERT_NE(core, std::string::npos) << limits;
    std::istringstream line(limits.substr(core + 18));
    std::string soft, hard;
    line >> soft >> hard;
    EXPECT_EQ(soft + " " + hard, "0 0") << "pid " << pid;
  }
  EXPECT_EQ(status_field(read_file("/proc/" + shim_pid + "/status"), "NoNewPrivs"), "1") << "the shim";
  int threads = 0;
  for (const auto& task : dir_entries("/proc/" + std::to_string(qemu) + "/task")) {
    std::string s = read_file("/proc/" + std::to_string(qemu) + "/task/" + task + "/status");
    EXPECT_EQ(status_field(s, "Seccomp"), "2") << "thread " << task << " (" << status_field(s, "Name") << ")";
    ++threads;
  }
  EXPECT_GE(threads, 2) << "QEMU's main thread and its vCPU thread at least";
  // Its descriptors: standard ones, its disks, sockets, pipes and its own
  // event objects; none of the shim's files (its log, lock, exec log).
  std::string fd_dir = "/proc/" + std::to_string(qemu) + "/fd";
  for (const auto& fd : dir_entries(fd_dir)) {
    char target[4096];
    ssize_t n = ::readlink((fd_dir + "/" + fd).c_str(), target, sizeof target - 1);
    ASSERT_GT(n, 0) << fd;
    std::string t(target, static_cast<std::size_t>(n));
    bool kernel_object = t.rfind("socket:", 0) == 0 || t.rfind("pipe:", 0) == 0 || t.rfind("anon_inode:", 0) == 0;
    bool disk = t.size() > 5 && (t.ends_with(".ext4") || t.ends_with(".erofs") || t.ends_with(".img"));
    // Its RAM: the shim's memfd, or a template's or snapshot's RAM file,
    // bound read-only into the jail as /ram.
    bool guest_ram = t.rfind("/memfd:moat-guest-ram", 0) == 0 || t.ends_with("/ram") || t.ends_with("/ram (deleted)");
    struct stat st {};
    bool null_stdin = fd == "0" && ::stat((fd_dir + "/0").c_str(), &st) == 0 && S_ISCHR(st.st_mode) &&
                      st.st_rdev == makedev(1, 3);
    EXPECT_TRUE(kernel_object || disk || guest_ram || null_stdin) << "QEMU holds fd " << fd << " -> " << t;
  }
  // The guest still works under all that.
  auto o = run_moat({"exec", id, "--", "echo", "ok"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "ok\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

// The shim relays the guest's channel and network: once the VM runs, every
// one of its threads is under its seccomp filter, holding CAP_KILL at most. Each volume's server, which
// parses guest memory, is a process apart: its own namespaces, a root
// holding only the volume and a procfs of its own, no capability but the
// two it needs for files of any owner, no descriptor of the shim's, and a
// filter of its own.
TEST(VmJail, ShimAndEachVolumeServerAreFilteredAndTheServerIsConfined) {
  std::string volume = test_home() + "/jail-volume";
  ASSERT_EQ(::mkdir(volume.c_str(), 0755), 0);
  Running s;
  ASSERT_NO_FATAL_FAILURE(start_sandbox({"-v", volume + ":/data"}, &s));
  for (const auto& task : dir_entries("/proc/" + s.shim_pid + "/task")) {
    std::string st = read_file("/proc/" + s.shim_pid + "/task/" + task + "/status");
    EXPECT_EQ(status_field(st, "Seccomp"), "2") << "shim thread " << task << " (" << status_field(st, "Name") << ")";
    // Of root's capabilities the main thread keeps only CAP_KILL (QEMU is
    // another user); the network's threads, which handle guest frames,
    // none (capabilities are per thread).
    std::string kept = task == s.shim_pid ? "0000000000000020" : "0000000000000000";
    EXPECT_EQ(status_field(st, "CapEff"), kept) << "shim thread " << task;
    EXPECT_EQ(status_field(st, "CapBnd"), kept) << "shim thread " << task;
  }
  std::vector<pid_t> servers;
  for (pid_t p : processes_mentioning(volume))
    if (read_file("/proc/" + std::to_string(p) + "/cmdline").find("--volume-server") != std::string::npos)
      servers.push_back(p);
  ASSERT_EQ(servers.size(), 1u) << "one server for the one volume";
  std::string proc = "/proc/" + std::to_string(servers[0]);
  std::string status = read_file(proc + "/status");
  EXPECT_EQ(status_field(status, "CapEff"), "000000000000000a") << "CAP_DAC_OVERRIDE and CAP_FOWNER only";
  EXPECT_EQ(status_field(status, "CapBnd"), "000000000000000a");
  EXPECT_EQ(status_field(status, "CapAmb"), "0000000000000000");
  EXPECT_EQ(status_field(status, "NoNewPrivs"), "1");
  for (const auto& task : dir_entries(proc + "/task")) {
    std::string st = read_file(proc + "/task/" + task + "/status");
    EXPECT_EQ(status_field(st, "Seccomp"), "2") << "server thread " << task;
  }
  for (const char* ns : {"mnt", "pid", "net", "ipc", "uts"}) {
    EXPECT_NE(link_of(proc + "/ns/" + ns), link_of("/proc/" + s.shim_pid + "/ns/" + ns)) << ns;
    EXPECT_NE(link_of(proc + "/ns/" + ns), link_of("/proc/" + std::to_string(s.qemu) + "/ns/" + ns)) << ns;
  }
  EXPECT_EQ(sorted(dir_entries(proc + "/root")), (std::vector<std::string>{"proc", "volume"}));
  EXPECT_EQ(sorted(dir_entries(proc + "/root/proc")), (std::vector<std::string>{"1", "self", "thread-self"}));
  EXPECT_EQ(::mkdir((proc + "/root/planted").c_str(), 0700), -1);
  // Descriptors: stdio, its socket, and what it made itself (eventfds, the
  // guest's memory, its epoll set) or opened in the volume. Its tree is out
  // of our reach, so the kernel names such a path from its namespace's real
  // root: "/volume/..." on a machine, "<chroot dir>/volume/..." when all of
  // this runs in a chroot (as the fresh-machine check does).
  std::string fd_dir = proc + "/fd";
  auto in_tree = [](const std::string& t, const std::string& top) {
    bool ends_with_top = t.size() >= top.size() && t.compare(t.size() - top.size(), top.size(), top) == 0;
    return ends_with_top || t.find(top + "/") != std::string::npos;
  };
  for (const auto& fd : dir_entries(fd_dir)) {
    std::string t = link_of(fd_dir + "/" + fd);
    bool own = t.rfind("socket:", 0) == 0 || t.rfind("anon_inode:", 0) == 0 || t.rfind("/memfd:", 0) == 0 ||
               in_tree(t, "/volume") || in_tree(t, "/proc");
    bool stdio = fd == "0" || fd == "1" || fd == "2";
    EXPECT_TRUE(own || stdio) << "the volume server holds fd " << fd << " -> " << t;
  }
  // And it serves: the guest's file reaches the host.
  auto o = run_moat({"exec", s.id, "--", "sh", "-c", "echo through > /data/f && cat /data/f"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "through\n");
  EXPECT_EQ(read_file(volume + "/f"), "through\n");
  EXPECT_EQ(run_moat({"rm", "-f", s.id}).exit_code, 0);
  EXPECT_TRUE(processes_mentioning(volume).empty()) << "the server ends with its sandbox";
}

}  // namespace
}  // namespace moat::test
