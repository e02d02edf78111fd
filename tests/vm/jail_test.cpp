// What a running sandbox's QEMU may do (docs/security.md): under TCG the
// guest runs inside that process, so it holds no capability, cannot gain
// one, and every thread is under QEMU's seccomp filter.
#include <gtest/gtest.h>
#include <unistd.h>

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

TEST(VmJail, QemuHoldsNoCapabilityAndEveryThreadIsFiltered) {
  auto created = run_moat({"create", "--rootfs-dir", busybox_rootfs()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  ASSERT_EQ(run_moat({"start", id}).exit_code, 0);
  std::string dir = test_home() + "/sandboxes/" + id;
  std::string shim_pid = read_file(dir + "/shim.pid");
  shim_pid = shim_pid.substr(0, shim_pid.find('\n'));
  pid_t qemu = -1;
  for (pid_t pid : processes_mentioning(dir))
    if (std::to_string(pid) != shim_pid) qemu = pid;
  ASSERT_GT(qemu, 0) << "QEMU of " << dir;
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
    bool null_stdin = fd == "0" && t == "/dev/null";
    EXPECT_TRUE(kernel_object || disk || null_stdin) << "QEMU holds fd " << fd << " -> " << t;
  }
  // The guest still works under all that.
  auto o = run_moat({"exec", id, "--", "echo", "ok"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "ok\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
