// `moat run`: output streams, exit codes, big transfers, tty, timeout, signals.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::vector<std::string> run_args(std::vector<std::string> cmd, std::vector<std::string> flags = {}) {
  std::vector<std::string> a = {"run", "--rootfs-dir", busybox_rootfs()};
  a.insert(a.end(), flags.begin(), flags.end());
  a.push_back("--");
  a.insert(a.end(), cmd.begin(), cmd.end());
  return a;
}

TEST(VmRun, SeparatesStdoutAndStderrAndPropagatesExitCode) {
  auto o = run_moat(run_args({"sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(o.out, "out\n");
  EXPECT_EQ(o.err, "err\n");
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmRun, ExitBySignalIs128PlusN) {
  auto o = run_moat(run_args({"sh", "-c", "kill -TERM $$"}));
  EXPECT_EQ(o.exit_code, 143) << o.err;
  auto k = run_moat(run_args({"sh", "-c", "kill -KILL $$"}));
  EXPECT_EQ(k.exit_code, 137) << k.err;
}

TEST(VmRun, UnknownCommandExits127WithMessage) {
  auto o = run_moat(run_args({"no-such-command", "arg"}));
  EXPECT_EQ(o.exit_code, 127);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "moat: exec \"no-such-command\": command not found\n");
}

TEST(VmRun, EnvWorkdirAndUser) {
  auto o = run_moat(run_args({"sh", "-c", "echo $FOO; pwd; id -u; id -g; echo $HOME"},
                             {"-e", "FOO=bar baz", "-w", "/tmp", "-u", "65534:65534"}));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "bar baz\n/tmp\n65534\n65534\n/nonexistent\n");
  auto bad = run_moat(run_args({"true"}, {"-u", "nosuchuser"}));
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("unable to find user nosuchuser"), std::string::npos) << bad.err;
}

TEST(VmRun, UlimitsApplyToTheCommand) {
  auto o = run_moat(run_args({"sh", "-c", "ulimit -n; ulimit -H -n; ulimit -c"},
                             {"--ulimit", "nofile=256:512", "--ulimit", "core=0"}));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "256\n512\n0\n");
  auto bad = run_moat(run_args({"true"}, {"--ulimit", "nofile=9:3"}));
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("soft limit above hard limit"), std::string::npos) << bad.err;
  auto unknown = run_moat(run_args({"true"}, {"--ulimit", "bogus=1"}));
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_NE(unknown.err.find("unknown limit"), std::string::npos) << unknown.err;
}

TEST(VmRun, TenMiBOfStdoutArriveByteExact) {
  // The guest writes random bytes and prints their checksum on stderr.
  auto o = run_moat(run_args({"sh", "-c",
                              "head -c 10485760 /dev/urandom > /tmp/r && sha256sum /tmp/r | cut -d' ' -f1 >&2 && "
                              "cat /tmp/r"}));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  ASSERT_EQ(o.out.size(), 10485760u);
  EXPECT_EQ(sha256_hex(o.out) + "\n", o.err);
}

TEST(VmRun, TenMiBOfStdinArriveAndComeBackByteExact) {
  std::string data = random_bytes(10 * 1024 * 1024);
  auto o = run_moat(run_args({"sh", "-c", "cat > /tmp/in && sha256sum /tmp/in | cut -d' ' -f1 >&2 && cat /tmp/in"},
                             {"-i"}),
                    data);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err, sha256_hex(data) + "\n");
  ASSERT_EQ(o.out.size(), data.size());
  EXPECT_TRUE(o.out == data);
}

TEST(VmRun, StdinIsEmptyWithoutInteractive) {
  auto o = run_moat(run_args({"sh", "-c", "wc -c"}), "ignored");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, "0\n");
}

TEST(VmRun, TtyGivesAPtyOfTheCallersSize) {
  int master = -1;
  struct winsize ws {};
  ws.ws_row = 33;
  ws.ws_col = 111;
  int slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  std::vector<std::string> args = {moat_bin(), "run", "--rootfs-dir", busybox_rootfs(), "-t", "--",
                                   "sh", "-c", "tty; stty size"};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    ::ioctl(slave, TIOCSCTTY, 0);
    ::dup2(slave, 0);
    ::dup2(slave, 1);
    ::dup2(slave, 2);
    std::string home = "MOAT_HOME=" + test_home();
    std::string cache = "MOAT_CACHE_DIR=" + std::string(MOAT_BIN_DIR) + "/../test-cache";
    ::putenv(home.data());
    ::putenv(cache.data());
    std::vector<char*> a;
    for (auto& s : args) a.push_back(s.data());
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  ::close(slave);
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO once moat exits
    out.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  EXPECT_EQ(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find("/dev/pts/0"), std::string::npos) << out;
  EXPECT_NE(out.find("33 111"), std::string::npos) << out;
}

TEST(VmRun, TtyWithoutATerminalStillHasAPty) {
  auto o = run_moat(run_args({"sh", "-c", "tty >/dev/null && echo is-a-tty; stty size"}, {"-t"}));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "is-a-tty\r\n24 80\r\n");
}

TEST(VmRun, TimeoutKillsTheCommand) {
  auto o = run_moat(run_args({"sh", "-c", "echo started; sleep 60; echo never"}, {"--timeout", "2"}));
  EXPECT_EQ(o.exit_code, 124) << o.err;
  EXPECT_EQ(o.out, "started\n");
  EXPECT_NE(o.err.find("timed out"), std::string::npos) << o.err;
  EXPECT_LT(o.seconds, 45);
}

TEST(VmRun, SigtermToTheCliReachesTheCommand) {
  auto r = spawn_moat(run_args({"sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"}));
  std::string seen = read_until(r.out_fd, "ready\n", 120);
  ASSERT_NE(seen.find("ready"), std::string::npos);
  ::kill(r.pid, SIGTERM);
  auto o = finish(r, 60);
  EXPECT_EQ(seen + o.out, "ready\ngot-term\n");
  EXPECT_EQ(o.exit_code, 7) << o.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmRun, SigintToTheCliInterruptsTheCommand) {
  auto r = spawn_moat(run_args({"sh", "-c", "echo ready; sleep 60"}));
  ASSERT_NE(read_until(r.out_fd, "ready\n", 120).find("ready"), std::string::npos);
  ::kill(r.pid, SIGINT);
  auto o = finish(r, 60);
  EXPECT_EQ(o.exit_code, 130) << o.err;
}

TEST(VmRun, WritableRootImagePersistsAndStaysClean) {
  std::string img = test_home() + "/root.ext4";
  std::string cmd = "mkfs.ext4 -q -F -d '" + busybox_rootfs() + "' '" + img + "' 64M";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto w = run_moat({"run", "--rootfs-image", img, "--writable-root", "--", "sh", "-c", "echo kept > /note"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto r = run_moat({"run", "--rootfs-image", img, "--writable-root", "--", "cat", "/note"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kept\n");
  EXPECT_EQ(std::system(("e2fsck -fn '" + img + "' >/dev/null 2>&1").c_str()), 0);
}

TEST(VmRun, OverlayRootIsWritableAndImageUnchanged) {
  auto o = run_moat(run_args({"sh", "-c", "echo hi > /etc/new && cat /etc/new && mount | grep -c ' / type overlay'"}));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hi\n1\n");
  auto again = run_moat(run_args({"cat", "/etc/new"}));
  EXPECT_EQ(again.exit_code, 1);
}

TEST(VmRun, GuestSeesKernelFilesystemsHostnameAndLoopback) {
  auto o = run_moat(run_args({"sh", "-c",
                              "hostname; for m in /proc /sys /dev /dev/pts /dev/shm /tmp /run; do "
                              "grep -q \" $m \" /proc/mounts && echo ok $m; done; ip -o link show lo | grep -c UP"},
                             {"--hostname", "box1"}));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "box1\nok /proc\nok /sys\nok /dev\nok /dev/pts\nok /dev/shm\nok /tmp\nok /run\n1\n");
}

}  // namespace
}  // namespace moat::test
