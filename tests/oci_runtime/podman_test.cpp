// moat-runtime under a real engine: Debian's podman (with conmon) runs a
// busybox image imported from the test rootfs, each container a microVM.
// podman keeps its own store in the test's scratch directory (vfs, cgroupfs,
// no events), so nothing of the machine's podman is touched. The runtime's
// state is its default root, which podman's bare `state` calls rely on.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "command_run.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

namespace it = moat::test_commands;

std::string runtime_bin() { return std::string(MOAT_BIN_DIR) + "/moat-runtime"; }

class Podman : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = test_home() + "/podman-scratch";
    std::filesystem::create_directories(scratch_);
    before_ = default_root();
    auto imported = it::run({"sh", "-c", "tar -C " + busybox_rootfs() + " -c . | " + podman_line() + " import - local/busybox:1"},
                            {}, scratch_);
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }
  static void TearDownTestSuite() {
    it::run({"sh", "-c", podman_line() + " rm -af; " + podman_line() + " rmi -af"}, {}, scratch_);
    std::filesystem::remove_all(scratch_);
  }
  static std::string podman_line() {
    return "podman --root " + scratch_ + "/root --runroot " + scratch_ + "/run --storage-driver vfs "
           "--cgroup-manager cgroupfs --events-backend none --runtime " + runtime_bin();
  }
  static std::vector<std::string> podman(std::vector<std::string> args) {
    std::vector<std::string> argv = {"podman", "--root", scratch_ + "/root", "--runroot", scratch_ + "/run",
                                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                                     "--events-backend", "none", "--runtime", runtime_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // `podman run --rm` with the options every run here needs: podman's
  // default ulimits are above this machine's hard limit, and no network.
  static std::vector<std::string> run_rm(std::vector<std::string> rest, const std::string& network = "none") {
    std::vector<std::string> a = {"run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                  "--network", network};
    a.insert(a.end(), rest.begin(), rest.end());
    return podman(a);
  }
  it::CmdResult go(const std::vector<std::string>& argv) { return it::run(argv, {}, scratch_); }

  // What the runtime's default root (shared by every user of this machine)
  // holds: containers, sandboxes and their processes.
  struct DefaultRoot {
    std::set<std::string> containers, sandboxes;
    std::set<pid_t> processes;
  };
  static DefaultRoot default_root() {
    DefaultRoot d;
    std::istringstream listed(it::run({runtime_bin(), "list", "-q"}, {}, scratch_).out);
    for (std::string line; std::getline(listed, line);) d.containers.insert(line);
    for (const auto& e : dir_entries(std::string("/run/moat-runtime/moat/sandboxes"))) d.sandboxes.insert(e);
    for (pid_t p : processes_mentioning("/run/moat-runtime/moat/sandboxes/")) d.processes.insert(p);
    return d;
  }
  template <typename T>
  static std::vector<T> added(const std::set<T>& now, const std::set<T>& before) {
    std::vector<T> out;
    std::set_difference(now.begin(), now.end(), before.begin(), before.end(), std::back_inserter(out));
    return out;
  }
  // Nothing of moat's may remain once podman removed its containers (what
  // was there before the suite, from other users of the root, is not ours).
  void expect_nothing_left() {
    DefaultRoot now = default_root();
    EXPECT_TRUE(added(now.containers, before_.containers).empty()) << ::testing::PrintToString(now.containers);
    EXPECT_TRUE(added(now.sandboxes, before_.sandboxes).empty()) << ::testing::PrintToString(now.sandboxes);
    EXPECT_TRUE(added(now.processes, before_.processes).empty());
  }

  static std::string scratch_;
  static DefaultRoot before_;
};
std::string Podman::scratch_;
Podman::DefaultRoot Podman::before_;

TEST_F(Podman, RunPrintsAndExitsWithTheProcesssCode) {
  auto hi = go(run_rm({"local/busybox:1", "echo", "hi"}));
  EXPECT_EQ(hi.exit_code, 0) << hi.err;
  EXPECT_EQ(hi.out, "hi\n") << hi.err;
  // A VM, not a host container: PID 1 is moat's agent, the root its share.
  auto where = go(run_rm({"local/busybox:1", "sh", "-c", "cat /proc/1/comm; grep ' / ' /proc/mounts | cut -d' ' -f1,3"}));
  EXPECT_EQ(where.out, "init\nvol0 virtiofs\n") << where.err;
  auto three = go(run_rm({"local/busybox:1", "sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(three.exit_code, 3) << three.err;
  EXPECT_EQ(three.out, "out\n");
  EXPECT_NE(three.err.find("err\n"), std::string::npos) << three.err;
  auto killed = go(run_rm({"local/busybox:1", "sh", "-c", "kill -9 $$"}));
  EXPECT_EQ(killed.exit_code, 137) << killed.err;
  expect_nothing_left();
}

TEST_F(Podman, RunWithATerminalHasItsSizeAndItsCode) {
  // podman -it needs a terminal of its own: script(1) gives it one, sized.
  auto r = go({"script", "-qec",
               "stty rows 33 cols 101; " + podman_line() +
                   " run -it --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none local/busybox:1 "
                   "sh -c 'tty; stty size; exit 5'",
               "/dev/null"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.out.find("/dev/pts/0\r\n33 101\r\n"), std::string::npos) << r.out;
  expect_nothing_left();
}

TEST_F(Podman, MemoryLimitIsTheVmsMemory) {
  auto r = go(run_rm({"--memory", "512m", "local/busybox:1", "sh", "-c", "grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  long kib = std::stol(r.out);
  // 512 MiB less what the guest kernel keeps for itself.
  EXPECT_GT(kib, 400 * 1024) << r.out;
  EXPECT_LE(kib, 512 * 1024) << r.out;
  expect_nothing_left();
}

TEST_F(Podman, EnvWorkdirAndUserReachTheProcess) {
  auto r = go(run_rm({"--env", "GREETING=hello there", "--workdir", "/tmp", "--user", "1000:1000", "local/busybox:1",
                      "sh", "-c", "echo \"$GREETING\"; pwd; id -u; id -g"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello there\n/tmp\n1000\n1000\n");
  expect_nothing_left();
}

// --read-only: root.readonly serves the root read-only (podman mounts its
// tmpfs at /tmp, /run and /var/tmp, which stay writable).
TEST_F(Podman, AReadOnlyRootRefusesWrites) {
  auto r = go(run_rm({"--read-only", "local/busybox:1", "sh", "-c",
                      "touch /etc/x 2>/dev/null; echo \"root $?\"; touch /tmp/x; echo \"tmp $?\"; "
                      "grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "root 1\ntmp 0\nro\n");
  auto writable = go(run_rm({"local/busybox:1", "sh", "-c", "touch /etc/x; echo \"root $?\""}));
  EXPECT_EQ(writable.out, "root 0\n") << writable.err;
  expect_nothing_left();
}

// process.capabilities and noNewPrivileges are applied in the guest: podman's
// --cap-drop/--cap-add and --security-opt no-new-privileges.
TEST_F(Podman, CapabilitiesAndNoNewPrivilegesApplyInTheGuest) {
  auto r = go(run_rm({"--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--cap-add", "CHOWN",
                      "--security-opt", "no-new-privileges", "local/busybox:1", "sh", "-c",
                      "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\t' ' '; "
                      "touch /tmp/f; chown 1000 /tmp/f && echo chown ok; ip link set lo down 2>/dev/null || echo netadmin refused"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "CapPrm: 0000000000000401\nCapEff: 0000000000000401\nCapBnd: 0000000000000401\nNoNewPrivs: 1\n"
                   "chown ok\nnetadmin refused\n");
  expect_nothing_left();
}

TEST_F(Podman, AVolumeIsSharedBothWays) {
  std::string host = scratch_ + "/data";
  std::filesystem::create_directories(host);
  std::string bytes = random_bytes(300000);
  std::ofstream(host + "/in.bin", std::ios::binary) << bytes;
  auto r = go(run_rm({"-v", host + ":/data", "local/busybox:1", "sh", "-c",
                      "sha256sum /data/in.bin | cut -d' ' -f1; cp /data/in.bin /data/out.bin"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, sha256_hex(bytes) + "\n");
  EXPECT_EQ(it::slurp(host + "/out.bin"), bytes);
  expect_nothing_left();
}

// The engine's network namespace is where the container's traffic leaves:
// a server on the loopback of a namespace made here answers the guest's
// host.moat.internal, while the host's own loopback (a second server on the
// same port) is not what it reaches. In the engine's namespace moat's mode
// is `all` (the namespace is the boundary, as a pod's localhost is shared);
// an annotation narrows it: under `public` the connection is refused, and an
// allow rule opens it again.
TEST_F(Podman, TrafficLeavesFromTheEnginesNetworkNamespace) {
  std::string ns = "moat-test-" + std::to_string(::getpid());
  int port = 20000 + ::getpid() % 20000;
  std::string inside = scratch_ + "/inside", outside = scratch_ + "/outside";
  std::filesystem::create_directories(inside);
  std::filesystem::create_directories(outside);
  std::ofstream(inside + "/where") << "inside the namespace\n";
  std::ofstream(outside + "/where") << "on the host\n";
  ASSERT_EQ(go({"ip", "netns", "add", ns}).exit_code, 0);
  ASSERT_EQ(go({"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"}).exit_code, 0);
  std::string p = std::to_string(port);
  auto servers = go({"sh", "-c",
                     "ip netns exec " + ns + " busybox httpd -f -p 127.0.0.1:" + p + " -h " + inside +
                         " >/dev/null 2>&1 & echo $!; busybox httpd -f -p 127.0.0.1:" + p + " -h " + outside +
                         " >/dev/null 2>&1 & echo $!"});
  ASSERT_EQ(servers.exit_code, 0);
  std::string url = "http://127.0.0.1:" + p + "/where";
  for (int i = 0; i < 50 && go({"ip", "netns", "exec", ns, "busybox", "wget", "-q", "-O", "-", url}).exit_code != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));

  auto fetched = go(run_rm({"local/busybox:1", "wget", "-q", "-O", "-", "http://host.moat.internal:" + p + "/where"}, "ns:/run/netns/" + ns));
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out, "inside the namespace\n");
  auto refused = go(run_rm({"--annotation", "io.moat.network=public", "local/busybox:1", "sh", "-c",
                            "wget -q -O - http://host.moat.internal:" + p + "/where; echo \"wget $?\""}, "ns:/run/netns/" + ns));
  EXPECT_EQ(refused.out, "wget 1\n") << refused.err;
  auto allowed = go(run_rm({"--annotation", "io.moat.network=public", "--annotation", "io.moat.network.allow=@host:" + p,
                            "local/busybox:1", "wget", "-q", "-O", "-", "http://host.moat.internal:" + p + "/where"},
                           "ns:/run/netns/" + ns));
  EXPECT_EQ(allowed.out, "inside the namespace\n") << allowed.err;

  for (const auto& pid : {servers.out.substr(0, servers.out.find('\n')), servers.out.substr(servers.out.find('\n') + 1)})
    if (!pid.empty()) ::kill(std::stoi(pid), SIGTERM);
  EXPECT_EQ(go({"ip", "netns", "delete", ns}).exit_code, 0);
  expect_nothing_left();
}

// podman's bridge network: the engine's namespace is joined and every port
// the guest listens on is published there (the runtime's default for an
// engine's namespace), so podman's own `-p 127.0.0.1:HP:GP` mapping reaches
// the server in the guest with no moat-specific setting.
TEST_F(Podman, APublishedPortReachesTheGuestsServer) {
  std::string hp = std::to_string(21000 + ::getpid() % 20000);
  auto started = go(podman({"run", "-d", "--name", "pub", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                            "--network", "bridge", "-p", "127.0.0.1:" + hp + ":8080", "local/busybox:1", "sh", "-c",
                            "mkdir -p /w; echo served > /w/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /w & wait"}));
  ASSERT_EQ(started.exit_code, 0) << started.err;
  it::CmdResult fetched;
  for (int i = 0; i < 100; ++i) {
    // No -T: Debian's busybox 1.35 wget dies of SIGSEGV on a refused
    // connection when it is given (timeout(1) bounds it instead).
    fetched = go({"timeout", "5", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:" + hp + "/"});
    if (fetched.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(fetched.out, "served\n") << "wget exit " << fetched.exit_code << ": " << fetched.err;
  EXPECT_EQ(go(podman({"stop", "-t", "10", "pub"})).exit_code, 0);
  EXPECT_EQ(go(podman({"inspect", "-f", "{{.State.ExitCode}}", "pub"})).out, "0\n");
  EXPECT_EQ(go(podman({"rm", "pub"})).exit_code, 0);
  expect_nothing_left();
}

TEST_F(Podman, PauseStopsTheContainerAndUnpauseGoesOn) {
  auto started = go(podman({"run", "-d", "--name", "ticker", "--ulimit", "nofile=1024:1024", "--ulimit",
                            "nproc=1024:1024", "--network", "none", "local/busybox:1", "sh", "-c",
                            "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"}));
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string id = go(podman({"inspect", "-f", "{{.Id}}", "ticker"})).out.substr(0, 64);
  for (int i = 0; i < 100 && go(podman({"logs", "ticker"})).out.size() < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto paused = go(podman({"pause", "ticker"}));
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(go(podman({"inspect", "-f", "{{.State.Status}}", "ticker"})).out, "paused\n");
  auto state = go({runtime_bin(), "state", id});
  EXPECT_NE(state.out.find("\"status\": \"paused\""), std::string::npos) << state.out << state.err;
  // Nothing is printed while paused.
  std::string before = go(podman({"logs", "ticker"})).out;
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(go(podman({"logs", "ticker"})).out, before);
  auto resumed = go(podman({"unpause", "ticker"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(go(podman({"inspect", "-f", "{{.State.Status}}", "ticker"})).out, "running\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  std::string after = go(podman({"logs", "ticker"})).out;
  EXPECT_GT(after.size(), before.size() + 4) << "the container does not go on after unpause";
  // Its count goes on from where it stood: the first line after the pause
  // follows the last one before it.
  std::string last_before = before.substr(before.rfind('\n', before.size() - 2) + 1);
  long long n = std::stoll(last_before);
  EXPECT_EQ(after.substr(before.size(), after.find('\n', before.size()) - before.size()), std::to_string(n + 1));
  EXPECT_EQ(go(podman({"rm", "-f", "ticker"})).exit_code, 0);
}

TEST_F(Podman, DetachedExecLogsStopAndRemove) {
  auto started = go(podman({"run", "-d", "--name", "web", "--ulimit", "nofile=1024:1024", "--ulimit",
                            "nproc=1024:1024", "--network", "none", "local/busybox:1", "sh", "-c",
                            "echo started; trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.2; done"}));
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto ex = go(podman({"exec", "web", "sh", "-c", "echo from exec; exit 4"}));
  EXPECT_EQ(ex.exit_code, 4) << ex.err;
  EXPECT_EQ(ex.out, "from exec\n");
  std::string id = go(podman({"inspect", "-f", "{{.Id}}", "web"})).out.substr(0, 64);
  auto state = go({runtime_bin(), "state", id});
  EXPECT_NE(state.out.find("\"status\": \"running\""), std::string::npos) << state.out << state.err;
  // The VM's size is fixed while it runs: another one is refused, saying so;
  // the container runs on.
  auto resized = go(podman({"update", "--memory", "512m", "web"}));
  EXPECT_NE(resized.exit_code, 0);
  EXPECT_NE(resized.err.find("container " + id + "'s VM keeps its memory and vCPUs while it runs; asked for memory "
                             "512 MiB (it has 256 MiB)"),
            std::string::npos)
      << resized.err;
  EXPECT_EQ(go(podman({"exec", "web", "true"})).exit_code, 0);
  auto stopped = go(podman({"stop", "-t", "10", "web"}));
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  auto logs = go(podman({"logs", "web"}));
  EXPECT_EQ(logs.out, "started\ngot TERM\n") << logs.err;
  auto code = go(podman({"inspect", "-f", "{{.State.ExitCode}}", "web"}));
  EXPECT_EQ(code.out, "0\n");
  EXPECT_EQ(go(podman({"rm", "web"})).exit_code, 0);

  // A process that ignores TERM is ended by KILL: 137.
  ASSERT_EQ(go(podman({"run", "-d", "--name", "stubborn", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                       "--network", "none", "local/busybox:1", "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.2; done"}))
                .exit_code,
            0);
  // TERM only once the trap is set (a TERM before it would end the shell).
  for (int i = 0; i < 100 && go(podman({"logs", "stubborn"})).out != "ready\n"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(go(podman({"kill", "-s", "TERM", "stubborn"})).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(go(podman({"inspect", "-f", "{{.State.Running}}", "stubborn"})).out, "true\n");
  EXPECT_EQ(go(podman({"kill", "-s", "KILL", "stubborn"})).exit_code, 0);
  EXPECT_EQ(go(podman({"wait", "stubborn"})).out, "137\n");
  EXPECT_EQ(go(podman({"rm", "stubborn"})).exit_code, 0);
  expect_nothing_left();
}

}  // namespace
}  // namespace moat::test
