// create / start / exec / stop / rm, concurrency, cleanup, and failures that
// must give clear errors instead of hangs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <thread>

#include "proto/message.h"
#include "sandbox/sandbox_db.h"
#include "jail/syscall_filter.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string sandbox_dir(const std::string& id) { return test_home() + "/sandboxes/" + id; }

void expect_nothing_left(const std::string& id) {
  EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty()) << "a process of sandbox " << id << " survived";
  struct stat st {};
  EXPECT_NE(::stat(sandbox_dir(id).c_str(), &st), 0) << sandbox_dir(id) << " still exists";
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmLifecycle, CreateExecStopLeavesNothingBehind) {
  std::string id = create_sandbox();
  ASSERT_FALSE(processes_mentioning(sandbox_dir(id)).empty()) << "no shim/QEMU running";
  auto a = run_moat({"exec", id, "--", "sh", "-c", "echo one > /tmp/state"});
  EXPECT_EQ(a.exit_code, 0) << a.err;
  auto b = run_moat({"exec", id, "--", "cat", "/tmp/state"});
  EXPECT_EQ(b.out, "one\n");
  auto s = run_moat({"stop", id});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, id + "\n");
  // Stopped: no process, no socket, but the disk and logs are kept.
  EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty());
  struct stat st {};
  EXPECT_NE(::stat((sandbox_dir(id) + "/control.sock").c_str(), &st), 0);
  EXPECT_EQ(::stat((sandbox_dir(id) + "/upper.ext4").c_str(), &st), 0);
  auto stopped = run_moat({"exec", id, "--", "true"});
  EXPECT_EQ(stopped.exit_code, 125);
  EXPECT_NE(stopped.err.find("is not running (stopped); start it with `moat start " + id + "`"), std::string::npos)
      << stopped.err;
  auto rm = run_moat({"rm", id});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  expect_nothing_left(id);
  auto again = run_moat({"exec", id, "--", "true"});
  EXPECT_EQ(again.exit_code, 125);
  EXPECT_NE(again.err.find("no such sandbox"), std::string::npos) << again.err;
}

TEST(VmLifecycle, EightConcurrentExecsKeepTheirOutputApart) {
  std::string id = create_sandbox({"--cpus", "2"});
  std::vector<std::future<Outcome>> runs;
  for (int i = 0; i < 8; ++i) {
    runs.push_back(std::async(std::launch::async, [id, i] {
      std::string n = std::to_string(i);
      return run_moat({"exec", id, "--", "sh", "-c",
                       "i=0; while [ $i -lt 300 ]; do echo s" + n + "-$i; echo e" + n + "-$i >&2; i=$((i+1)); done; exit " + n});
    }));
  }
  for (int i = 0; i < 8; ++i) {
    Outcome o = runs[static_cast<std::size_t>(i)].get();
    std::string want_out, want_err;
    for (int k = 0; k < 300; ++k) {
      want_out += "s" + std::to_string(i) + "-" + std::to_string(k) + "\n";
      want_err += "e" + std::to_string(i) + "-" + std::to_string(k) + "\n";
    }
    EXPECT_EQ(o.exit_code, i);
    EXPECT_EQ(o.out, want_out) << "exec " << i;
    EXPECT_EQ(o.err, want_err) << "exec " << i;
  }
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  expect_nothing_left(id);
}

TEST(VmLifecycle, KilledVmGivesTheClientAnErrorAndTheShimCleansUp) {
  std::string id = create_sandbox();
  auto r = spawn_moat({"exec", id, "--", "sh", "-c", "echo ready; sleep 60"});
  ASSERT_NE(read_until(r.out_fd, "ready\n", 120).find("ready"), std::string::npos);
  pid_t qemu = qemu_of(sandbox_dir(id));
  ASSERT_GT(qemu, 0);
  ::kill(qemu, SIGKILL);
  auto o = finish(r, 60);
  EXPECT_EQ(o.exit_code, 125);
  EXPECT_NE(o.err.find("stopped"), std::string::npos) << o.err;
  for (int i = 0; i < 100 && !processes_mentioning(sandbox_dir(id)).empty(); ++i) ::usleep(50000);
  EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty());
  // The next call notices: crashed, with QEMU's fate as the reason.
  auto ls = run_moat({"inspect", id});
  EXPECT_NE(ls.out.find("\"state\": \"crashed\""), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("QEMU killed by signal Killed unexpectedly"), std::string::npos) << ls.out;
  EXPECT_EQ(run_moat({"rm", id}).exit_code, 0);
  expect_nothing_left(id);
}

TEST(VmLifecycle, RunCliKilledTakesItsSandboxDown) {
  auto r = spawn_moat({"run", "--rootfs-dir", busybox_rootfs(), "--", "sh", "-c", "echo ready; sleep 60"});
  ASSERT_NE(read_until(r.out_fd, "ready\n", 120).find("ready"), std::string::npos);
  ::kill(r.pid, SIGKILL);
  finish(r, 30);
  // Nobody waits for this shim: it notices its owner is gone, kills the VM,
  // removes the sandbox and exits, all on its own.
  auto all_gone = [] { return leftover_sandboxes().empty() && processes_mentioning(test_home() + "/sandboxes/").empty(); };
  for (int i = 0; i < 200 && !all_gone(); ++i) ::usleep(50000);
  EXPECT_TRUE(leftover_sandboxes().empty());
  EXPECT_TRUE(processes_mentioning(test_home() + "/sandboxes/").empty());
}

int connect_control(const std::string& id) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::string path = sandbox_dir(id) + "/control.sock";
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

std::string read_some(int fd) {
  struct timeval tv {10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// Clients past the shim's descriptors: accept() fails with EMFILE, and the
// connection would stay in the backlog with poll() reporting it at once, a
// busy loop that never answers. The shim takes such a connection with a
// spare descriptor and closes it, so the client sees the refusal (EOF), and
// once the crowd leaves, commands run again.
TEST(VmLifecycle, ClientsPastTheShimsDescriptorsAreRefusedNotLeftPending) {
  set_child_nofile_limit(256);
  std::string id = create_sandbox();
  set_child_nofile_limit(0);
  constexpr int kClients = 400;
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", (sandbox_dir(id) + "/control.sock").c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      fds.push_back(fd);
    } else {
      ::close(fd);  // the backlog is full for now (EAGAIN)
      ::usleep(10000);
    }
  }
  // Refused connections read as EOF; accepted ones stay open and silent.
  int refused = 0;
  for (int round = 0; round < 100 && refused == 0; ++round) {
    ::usleep(100000);
    for (int fd : fds) {
      char c;
      if (::read(fd, &c, 1) == 0) ++refused;
    }
  }
  EXPECT_GT(refused, 0) << "no client past the descriptor limit was refused";
  for (int fd : fds) ::close(fd);
  auto after = run_moat({"exec", id, "--", "echo", "serving"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(after.out, "serving\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

TEST(VmLifecycle, GarbageAndOversizedFramesGetErrorsNotCrashes) {
  std::string id = create_sandbox();
  {
    // A well-framed body that is not CBOR: an error on that stream.
    int fd = connect_control(id);
    std::string wire;
    proto::encode_frame(5, 0, "\xff\xfe garbage", wire);
    ASSERT_EQ(::write(fd, wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
    std::string reply = read_some(fd);
    proto::FrameDecoder d;
    d.feed(reply);
    proto::Frame f;
    auto got = d.next(f);
    ASSERT_TRUE(got.ok() && *got) << "no reply";
    auto m = proto::decode_message(f);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(f.stream, 5u);
    EXPECT_EQ(m->type, "error");
    EXPECT_EQ(m->payload["code"], "bad_message");
    ::close(fd);
  }
  {
    // A frame announcing 2 GiB: an error, then the connection is closed.
    int fd = connect_control(id);
    std::string wire("\x80\x00\x00\x00\x00\x00\x00\x01\x00", 9);
    ASSERT_EQ(::write(fd, wire.data(), wire.size()), 9);
    std::string reply = read_some(fd);
    EXPECT_NE(reply.find("exceeds the limit"), std::string::npos);
    EXPECT_EQ(read_some(fd), "");  // closed
    ::close(fd);
  }
  // The sandbox still works.
  auto o = run_moat({"exec", id, "--", "echo", "alive"});
  EXPECT_EQ(o.out, "alive\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  expect_nothing_left(id);
}

TEST(VmLifecycle, MissingRootfsIsAClearError) {
  auto o = run_moat({"run", "--rootfs-dir", "/nonexistent/rootfs", "--", "true"});
  EXPECT_EQ(o.exit_code, 125);
  EXPECT_NE(o.err.find("/nonexistent/rootfs"), std::string::npos) << o.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmLifecycle, MissingQemuIsAClearError) {
  auto o = run_moat({"run", "--rootfs-dir", busybox_rootfs(), "--", "true"}, "", {"MOAT_QEMU=/nonexistent/qemu"});
  EXPECT_EQ(o.exit_code, 125);
  EXPECT_NE(o.err.find("/nonexistent/qemu"), std::string::npos) << o.err;
}

TEST(VmLifecycle, QemuFailingToStartShowsItsStderr) {
  std::string fake =
      write_fake_qemu("failing-qemu", "#!/bin/sh\necho 'qemu: could not open kernel: simulated failure' >&2\nexit 1\n");
  auto o = run_moat({"run", "--rootfs-dir", busybox_rootfs(), "--", "true"}, "", {"MOAT_QEMU=" + fake});
  EXPECT_EQ(o.exit_code, 125);
  EXPECT_NE(o.err.find("simulated failure"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("exited with status 1"), std::string::npos) << o.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmLifecycle, SilentGuestTimesOutWithConsoleTail) {
  // An initramfs whose init never speaks the protocol.
  std::string stage = test_home() + "/silent";
  std::string initrd = test_home() + "/silent.cpio";
  std::string cmd = "mkdir -p " + stage + "/bin && cp /bin/busybox " + stage + "/bin/busybox && "
                    "printf '#!/bin/busybox sh\\n/bin/busybox echo silent-init-was-here > /dev/console\\n"
                    "/bin/busybox sleep 1000\\n' > " + stage + "/init && chmod 755 " + stage + "/init && "
                    "cd " + stage + " && find . | cpio --quiet -o -H newc > " + initrd;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto o = run_moat({"run", "--rootfs-dir", busybox_rootfs(), "--boot-timeout", "8", "--", "true"}, "",
                    {"MOAT_INITRAMFS=" + initrd});
  EXPECT_EQ(o.exit_code, 125);
  EXPECT_NE(o.err.find("did not answer within 8 s"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("silent-init-was-here"), std::string::npos) << o.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
  EXPECT_TRUE(processes_mentioning(test_home() + "/sandboxes/").empty());
}

TEST(VmLifecycle, BadFlagValuesAreRejectedBeforeBooting) {
  auto cpus = run_moat({"run", "--cpus", "0", "--", "true"});
  EXPECT_EQ(cpus.exit_code, 125);
  EXPECT_NE(cpus.err.find("--cpus"), std::string::npos);
  auto accel = run_moat({"run", "--accel", "warp", "--", "true"});
  EXPECT_EQ(accel.exit_code, 125);
  EXPECT_NE(accel.err.find("unknown accelerator"), std::string::npos);
  auto nocmd = run_moat({"run"});
  EXPECT_EQ(nocmd.exit_code, 125);
  EXPECT_NE(nocmd.err.find("no command"), std::string::npos);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// Waits until a moat-shim runs for `id` (its command line names the dir).
bool wait_for_shim(const std::string& id, int timeout_s) {
  for (int i = 0; i < timeout_s * 50; ++i) {
    for (pid_t pid : processes_mentioning(sandbox_dir(id))) {
      std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
      std::string comm;
      std::getline(in, comm);
      if (comm == "moat-shim") return true;
    }
    ::usleep(20000);
  }
  return false;
}

bool wait_for_no_processes(const std::string& id, int timeout_s) {
  for (int i = 0; i < timeout_s * 50; ++i) {
    if (processes_mentioning(sandbox_dir(id)).empty()) return true;
    ::usleep(20000);
  }
  return false;
}

// Whether `moat inspect id` shows "field": "value".
bool inspect_shows(const std::string& id, const std::string& field, const std::string& value) {
  auto o = run_moat({"inspect", id});
  return o.out.find("\"" + field + "\": \"" + value + "\"") != std::string::npos;
}

// kill -9 of `moat start` while the guest boots: the shim sees that nobody
// waits for its verdict and ends the VM; meanwhile the record says running,
// so stop and rm -f can reach it.
TEST(VmLifecycle, AStartKilledWhileBootingLeavesNoVmBehind) {
  auto created = run_moat({"create", "--name", "ks", "--rootfs-dir", busybox_rootfs()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  auto start = spawn_moat({"start", "ks"});
  ASSERT_TRUE(wait_for_shim(id, 30));
  ::kill(start.pid, SIGKILL);
  EXPECT_EQ(finish(start).exit_code, 128 + SIGKILL);
  EXPECT_TRUE(wait_for_no_processes(id, 60)) << "the VM of an abandoned start still runs";
  EXPECT_TRUE(inspect_shows(id, "state", "stopped")) << run_moat({"inspect", id}).out;
  EXPECT_TRUE(inspect_shows(id, "reason", "its start was abandoned: the command that started it went away"))
      << run_moat({"inspect", id}).out;
  // The sandbox starts normally afterwards.
  auto again = run_moat({"start", "ks"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(run_moat({"exec", "ks", "--", "echo", "up"}).out, "up\n");
  EXPECT_EQ(run_moat({"rm", "-f", "ks"}).exit_code, 0);
  expect_nothing_left(id);
}

// A start killed after the shim said ready but before the record said
// running: the shim is the truth, and stop and rm -f reach it.
TEST(VmLifecycle, ALiveShimBehindAStoppedRecordIsAdopted) {
  std::string id = create_sandbox();
  {
    auto db = sandbox::SandboxDb::open(test_home());
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_TRUE((*db)->mark_finished(id, SandboxState::kStopped, "", 0));
  }
  auto ls = run_moat({"ls", "--format", "json"});
  EXPECT_NE(ls.out.find("\"state\": \"running\""), std::string::npos) << ls.out;
  auto stop = run_moat({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty()) << "stop left the VM running";
  EXPECT_TRUE(inspect_shows(id, "state", "stopped")) << run_moat({"inspect", id}).out;

  // Again through rm -f, which must end the VM before deleting anything.
  ASSERT_EQ(run_moat({"start", id}).exit_code, 0);
  {
    auto db = sandbox::SandboxDb::open(test_home());
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_TRUE((*db)->mark_finished(id, SandboxState::kStopped, "", 0));
  }
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
  expect_nothing_left(id);
}

TEST(VmDoctor, ReportsAccelChoiceAndPaths) {
  auto o = run_moat({"doctor"});
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("qemu"), std::string::npos);
  EXPECT_NE(o.out.find("QEMU emulator version"), std::string::npos);
  EXPECT_NE(o.out.find("kernel"), std::string::npos);
  EXPECT_NE(o.out.find("accelerator"), std::string::npos);
  EXPECT_NE(o.out.find("\njail           QEMU runs as a user of its own, in namespaces and a root holding only its "
                       "files, with no capability, under its own seccomp filter (-sandbox)\n"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find(jail::syscall_filters_enforce()
                           ? "\nfilters        the shim and each volume server run under seccomp allow-lists; "
                             "volume servers apart, in namespaces and a root holding only their volume\n"
                           : "\nfilters        sanitizer build: the shim's and volume servers' seccomp filters let "
                             "every call through\n"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("\ncgroup         each QEMU's memory, tasks and CPU are limited, in a group under /"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("ready"), std::string::npos);
}

}  // namespace
}  // namespace moat::test
