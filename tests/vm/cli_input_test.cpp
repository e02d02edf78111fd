// What the CLI does with its surroundings and its input, end to end: a
// reader that goes away (SIGPIPE), the environment the shim and QEMU get,
// the host name on the kernel command line, and the agent's own files
// beside a volume mounted over /etc.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a bash script with $MOAT set to the moat under test (and the test's
// state directory), the way a user's shell would; returns its stdout.
std::string shell(const std::string& script) {
  std::string cmd = "MOAT_HOME=" + quoted(test_home()) + " MOAT_CACHE_DIR=" +
                    quoted(std::string(MOAT_BIN_DIR) + "/../test-cache") + " MOAT=" + quoted(moat_bin()) +
                    " timeout 120 bash -c " + quoted(script) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Guest processes named `name`, counted from /proc.
std::string guest_count(const std::string& id, const std::string& name) {
  return run_moat({"exec", id, "--", "sh", "-c", "cat /proc/[0-9]*/comm 2>/dev/null | grep -cx " + name}).out;
}

TEST(VmCliInput, ShimAndQemuGetNoSecretsAndABrokenPipeEndsTheCommand) {
  const std::vector<std::string> secret = {"SECRET_TOKEN=x-secret-value"};
  auto created = run_moat({"create", "--rootfs-dir", busybox_rootfs()}, "", secret);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  ASSERT_EQ(run_moat({"start", id}, "", secret).exit_code, 0);

  // The shim and QEMU: both name the sandbox directory on their command line.
  std::string dir = test_home() + "/sandboxes/" + id;
  std::string shim_pid = read_file(dir + "/shim.pid");
  auto pids = processes_mentioning(dir);
  ASSERT_GE(pids.size(), 2u) << "shim and QEMU";
  bool saw_shim = false;
  for (pid_t pid : pids) {
    saw_shim |= std::to_string(pid) == shim_pid.substr(0, shim_pid.find('\n'));
    std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
    EXPECT_EQ(env.find("SECRET_TOKEN"), std::string::npos) << "pid " << pid << ": " << read_file("/proc/" + std::to_string(pid) + "/cmdline");
    EXPECT_EQ(env.find("x-secret-value"), std::string::npos);
    EXPECT_NE(env.find("PATH="), std::string::npos) << "pid " << pid;
  }
  EXPECT_TRUE(saw_shim);

  // `yes | head -1`: the command gets SIGPIPE, moat exits 141 at once.
  EXPECT_EQ(shell("\"$MOAT\" exec " + id + " -- yes | head -1; echo \"rc=${PIPESTATUS[0]}\""), "y\nrc=141\n");
  EXPECT_EQ(guest_count(id, "yes"), "0\n");
  // The same through stderr, and for a command that ignores SIGPIPE (killed
  // when it keeps writing).
  EXPECT_EQ(shell("\"$MOAT\" exec " + id + " -- sh -c 'yes >&2' 2>&1 >/dev/null | head -1; echo \"rc=${PIPESTATUS[0]}\""),
            "y\nrc=141\n");
  EXPECT_EQ(shell("\"$MOAT\" exec " + id + " -- sh -c 'trap \"\" PIPE; yes' | head -1; echo \"rc=${PIPESTATUS[0]}\""),
            "y\nrc=141\n");
  EXPECT_EQ(guest_count(id, "yes"), "0\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

TEST(VmCliInput, RunEndsOnABrokenPipeAndLeavesNothing) {
  EXPECT_EQ(shell("\"$MOAT\" run --rootfs-dir " + quoted(busybox_rootfs()) +
                  " -- yes | head -1; echo \"rc=${PIPESTATUS[0]}\""),
            "y\nrc=141\n");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmCliInput, HostnameReachesTheGuestAndAgentFilesStayOutOfVolumes) {
  char tmpl[] = "/tmp/moat-etc-XXXXXX";
  std::string etc = ::mkdtemp(tmpl);
  // A volume over /etc: the agent writes hostname, hosts and resolv.conf
  // into the root before mounting, so the host directory gets none of them.
  auto o = run_moat({"run", "--rootfs-dir", busybox_rootfs(), "--hostname", "box-1.example", "-v", etc + ":/etc", "--",
                     "sh", "-c", "hostname; ls -A /etc; tr ' ' '\\n' < /proc/cmdline | grep -c '^moat.hostname=box-1.example$'"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "box-1.example\n1\n");
  EXPECT_TRUE(dir_entries(etc).empty());
  std::system(("rm -rf '" + etc + "'").c_str());
}

}  // namespace
}  // namespace moat::test
