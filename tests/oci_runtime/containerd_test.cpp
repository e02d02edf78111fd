// moat-runtime under containerd: Debian's containerd, its runc v2 shim and
// ctr, with `--runc-binary` naming moat-runtime (what a RuntimeClass's
// BinaryName does for Kubernetes). The test starts a containerd of its own
// (its root, state and socket in the test's scratch directory, the CRI plugin
// off) and imports a busybox image made from the test rootfs, so the bundle's
// rootfs is a snapshot containerd mounted, as under Kubernetes.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "command_run.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

namespace it = moat::test_commands;

std::string runtime_bin() { return std::string(MOAT_BIN_DIR) + "/moat-runtime"; }

constexpr const char* kImage = "localhost/local/busybox:1";

class Containerd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = test_home() + "/containerd-scratch";
    std::filesystem::create_directories(scratch_);
    write_config();
    daemon_ = start_containerd();
    ASSERT_GT(daemon_, 0);
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      up = it::run(ctr({"version"}), {}, scratch_).exit_code == 0;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(up) << it::slurp(scratch_ + "/containerd.log");
    // An OCI archive of the busybox root, by way of podman (a store of its
    // own, short-lived, at a short path: podman refuses a run root over 50
    // characters).
    char store[] = "/tmp/moat-podman-XXXXXX";
    ASSERT_NE(::mkdtemp(store), nullptr);
    std::string podman = std::string("podman --root ") + store + "/root --runroot " + store +
                         "/run --storage-driver vfs --cgroup-manager cgroupfs --events-backend none";
    auto archived = it::run({"sh", "-c",
                             "tar -C " + busybox_rootfs() + " -c . | " + podman + " import - local/busybox:1 && " + podman +
                                 " save --format oci-archive -o " + scratch_ + "/busybox.tar local/busybox:1; s=$?; " +
                                 podman + " rmi -af; exit $s"},
                            {}, scratch_);
    std::filesystem::remove_all(store);
    ASSERT_EQ(archived.exit_code, 0) << archived.err;
    auto imported = it::run(ctr({"images", "import", "--snapshotter", "native", scratch_ + "/busybox.tar"}), {}, scratch_);
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }
  static void TearDownTestSuite() {
    if (daemon_ > 0) {
      ::kill(daemon_, SIGTERM);
      for (int i = 0; i < 100 && ::waitpid(daemon_, nullptr, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::filesystem::remove_all(scratch_);
  }
  // containerd as a child that dies with this process (a test process that
  // ends early must not leave a daemon behind), its output in scratch.
  static pid_t start_containerd() {
    std::string config = scratch_ + "/config.toml", log = scratch_ + "/containerd.log";
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      int null = ::open("/dev/null", O_RDONLY);
      if (fd < 0 || null < 0) ::_exit(127);
      ::dup2(null, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execlp("containerd", "containerd", "--config", config.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  }
  static void write_config() {
    std::ofstream(scratch_ + "/config.toml")
        << "version = 2\n"
        << "root = \"" << scratch_ << "/root\"\n"
        << "state = \"" << scratch_ << "/state\"\n"
        << "disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", "
           "\"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", "
           "\"io.containerd.snapshotter.v1.aufs\", \"io.containerd.internal.v1.tracing\", "
           "\"io.containerd.tracing.processor.v1.otlp\"]\n"
        << "[grpc]\n  address = \"" << scratch_ << "/containerd.sock\"\n"
        << "[ttrpc]\n  address = \"" << scratch_ << "/containerd.sock.ttrpc\"\n";
  }
  static std::vector<std::string> ctr(std::vector<std::string> args) {
    std::vector<std::string> argv = {"ctr", "--address", scratch_ + "/containerd.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // `ctr run` with moat-runtime as the shim's runc and its root in scratch.
  static std::vector<std::string> ctr_run(std::vector<std::string> rest) {
    std::vector<std::string> a = {"run", "--runc-binary", runtime_bin(), "--runc-root", runtime_root(),
                                  "--snapshotter", "native"};
    a.insert(a.end(), rest.begin(), rest.end());
    return ctr(a);
  }
  static std::string runtime_root() { return scratch_ + "/moat-runtime"; }
  // The runc shim runs the runtime with --root ROOT/NAMESPACE.
  static std::string runtime_state() { return runtime_root() + "/default"; }
  it::CmdResult go(const std::vector<std::string>& argv) { return it::run(argv, {}, scratch_); }

  // Nothing of moat's may remain once containerd deleted its containers.
  void expect_nothing_left() {
    auto listed = go({runtime_bin(), "--root", runtime_state(), "list", "-q"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_EQ(listed.out, "") << listed.err;
    EXPECT_TRUE(dir_entries(runtime_state() + "/moat/sandboxes").empty());
    EXPECT_TRUE(processes_mentioning(runtime_root() + "/").empty());
    auto containers = go(ctr({"containers", "ls", "-q"}));
    EXPECT_EQ(containers.out, "");
    auto mounts = it::slurp("/proc/self/mountinfo");
    EXPECT_EQ(mounts.find(scratch_ + "/state"), std::string::npos) << mounts;
  }

  static std::string scratch_;
  static pid_t daemon_;
};
std::string Containerd::scratch_;
pid_t Containerd::daemon_ = -1;

TEST_F(Containerd, RunPrintsAndExitsWithTheProcesssCode) {
  auto three = go(ctr_run({"--rm", kImage, "c-three", "sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(three.exit_code, 3) << three.err;
  EXPECT_EQ(three.out, "out\n");
  EXPECT_NE(three.err.find("err\n"), std::string::npos) << three.err;
  // A VM: PID 1 is moat's agent, the root the shim-mounted snapshot over virtio-fs.
  auto where = go(ctr_run({"--rm", kImage, "c-where", "sh", "-c",
                           "cat /proc/1/comm; grep ' / ' /proc/mounts | cut -d' ' -f1,3"}));
  EXPECT_EQ(where.exit_code, 0) << where.err;
  EXPECT_EQ(where.out, "init\nvol0 virtiofs\n");
  auto killed = go(ctr_run({"--rm", kImage, "c-killed", "sh", "-c", "kill -9 $$"}));
  EXPECT_EQ(killed.exit_code, 137) << killed.err;
  expect_nothing_left();
}

TEST_F(Containerd, TaskExecAndKill) {
  auto started = go(ctr_run({"-d", kImage, "c-web", "sh", "-c",
                             "trap 'exit 0' TERM; echo ready > /tmp/ready; while true; do sleep 0.2; done"}));
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto ex = go(ctr({"task", "exec", "--exec-id", "e1", "c-web", "sh", "-c", "echo from exec; exit 4"}));
  EXPECT_EQ(ex.exit_code, 4) << ex.err;
  EXPECT_EQ(ex.out, "from exec\n");
  EXPECT_NE(go(ctr({"task", "ls"})).out.find("RUNNING"), std::string::npos);
  // TERM (ctr's default) once the trap is set: the process exits 0.
  for (int i = 0; i < 100 && go(ctr({"task", "exec", "--exec-id", "e2", "c-web", "test", "-f", "/tmp/ready"})).exit_code != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(go(ctr({"task", "kill", "c-web"})).exit_code, 0);
  std::string status;
  for (int i = 0; i < 100 && status.find("STOPPED") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = go(ctr({"task", "ls"})).out;
  }
  EXPECT_NE(status.find("STOPPED"), std::string::npos) << status;
  auto deleted = go(ctr({"task", "delete", "c-web"}));
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.err.find("non-zero exit code"), std::string::npos) << deleted.err;
  EXPECT_EQ(go(ctr({"containers", "rm", "c-web"})).exit_code, 0);

  // A process that ignores TERM is ended by KILL: containerd sees 137.
  ASSERT_EQ(go(ctr_run({"-d", kImage, "c-stubborn", "sh", "-c",
                        "trap '' TERM; echo ready > /tmp/ready; while true; do sleep 0.2; done"}))
                .exit_code,
            0);
  for (int i = 0; i < 100 && go(ctr({"task", "exec", "--exec-id", "e3", "c-stubborn", "test", "-f", "/tmp/ready"})).exit_code != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(go(ctr({"task", "kill", "c-stubborn"})).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_NE(go(ctr({"task", "ls"})).out.find("RUNNING"), std::string::npos);
  EXPECT_EQ(go(ctr({"task", "kill", "-s", "SIGKILL", "c-stubborn"})).exit_code, 0);
  status.clear();
  for (int i = 0; i < 100 && status.find("STOPPED") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = go(ctr({"task", "ls"})).out;
  }
  EXPECT_NE(status.find("STOPPED"), std::string::npos) << status;
  auto killed = go(ctr({"task", "delete", "c-stubborn"}));
  EXPECT_NE(killed.err.find("exit with non-zero exit code 137"), std::string::npos) << killed.err;
  EXPECT_EQ(go(ctr({"containers", "rm", "c-stubborn"})).exit_code, 0);
  expect_nothing_left();
}

std::string ns_of(pid_t pid) {
  char link[256] = {};
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), link, sizeof(link) - 1);
  return n > 0 ? std::string(link, static_cast<std::size_t>(n)) : "";
}

// A pod's sandbox ("pause") container, as the CRI marks it, is held by the
// keeper without a VM, in a network namespace of its own (the spec lists one
// without a path); a container that joins /proc/KEEPER/ns/net, as the CRI
// makes a pod's other containers do, has its sandbox's shim open its
// sockets there.
TEST_F(Containerd, APodSandboxIsHeldWithoutAVmAndItsNamespaceIsShared) {
  auto pod = go(ctr_run({"-d", "--annotation", "io.kubernetes.cri.container-type=sandbox", kImage, "c-pod", "/pause"}));
  ASSERT_EQ(pod.exit_code, 0) << pod.err;
  EXPECT_TRUE(dir_entries(runtime_state() + "/moat/sandboxes").empty());
  auto tasks = go(ctr({"task", "ls"})).out;
  auto line = tasks.substr(tasks.find("c-pod"));
  pid_t keeper = std::stoi(line.substr(line.find_first_of("0123456789")));
  std::string pod_ns = ns_of(keeper);
  ASSERT_FALSE(pod_ns.empty());
  EXPECT_NE(pod_ns, ns_of(::getpid()));
  auto into_pod = go(ctr({"task", "exec", "--exec-id", "e1", "c-pod", "true"}));
  EXPECT_NE(into_pod.exit_code, 0);

  auto app = go(ctr_run({"-d", "--with-ns", "network:/proc/" + std::to_string(keeper) + "/ns/net", kImage, "c-app",
                         "sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; while true; do sleep 0.2; done"}));
  ASSERT_EQ(app.exit_code, 0) << app.err;
  int shims = 0;
  for (pid_t p : processes_mentioning(runtime_state() + "/moat/sandboxes/")) {
    // The sandbox's shim, not its volume server (in a jail of its own).
    std::string cmdline = it::slurp("/proc/" + std::to_string(p) + "/cmdline");
    if (cmdline.find("moat-shim") == std::string::npos || cmdline.find("--volume-server") != std::string::npos) continue;
    ++shims;
    EXPECT_EQ(ns_of(p), pod_ns);
  }
  EXPECT_EQ(shims, 1);
  for (int i = 0; i < 100 && go(ctr({"task", "exec", "--exec-id", "e2", "c-app", "test", "-f", "/tmp/ready"})).exit_code != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(go(ctr({"task", "kill", "c-app"})).exit_code, 0);
  EXPECT_EQ(go(ctr({"task", "kill", "c-pod"})).exit_code, 0);
  for (const char* id : {"c-app", "c-pod"}) {
    std::string status;
    for (int i = 0; i < 100 && status.find("STOPPED") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto all = go(ctr({"task", "ls"})).out;
      auto at = all.find(id);
      status = at == std::string::npos ? "" : all.substr(at, all.find('\n', at) - at);
    }
    EXPECT_NE(status.find("STOPPED"), std::string::npos) << id;
    auto deleted = go(ctr({"task", "delete", id}));
    EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
    EXPECT_EQ(deleted.err.find("non-zero exit code"), std::string::npos) << id << ": " << deleted.err;
    EXPECT_EQ(go(ctr({"containers", "rm", id})).exit_code, 0);
  }
  expect_nothing_left();
}

}  // namespace
}  // namespace moat::test
