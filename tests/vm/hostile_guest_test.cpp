// Resource attacks from inside a guest (docs/security.md): root in the VM
// fills its memory and forks without end, or fills its disk. The host keeps
// its memory (the guest is bounded by its RAM, QEMU by its cgroup) and its
// disk (the guest's is a sparse file of a fixed size), a neighbouring
// sandbox keeps answering, and the attacker can still be stopped and
// removed. Floods of the logs and of the host's descriptors have tests of
// their own (VmHostileAgent.EveryLogTheGuestFloodsStaysUnderItsCap,
// VmVolumes.FilesHeldOpenCannotExhaustTheShim, the network's
// --max-connections tests).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string create_started(const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"create"};
  args.insert(args.end(), flags.begin(), flags.end());
  args.insert(args.end(), {"--rootfs-dir", busybox_rootfs()});
  auto created = run_moat(args);
  EXPECT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  auto started = run_moat({"start", id});
  EXPECT_EQ(started.exit_code, 0) << started.err;
  return id;
}

// The median wall time of `n` `moat exec ID -- echo ok`, each checked.
double median_exec_seconds(const std::string& id, int n) {
  std::vector<double> seconds;
  for (int i = 0; i < n; ++i) {
    auto o = run_moat({"exec", id, "--", "echo", "ok"});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    EXPECT_EQ(o.out, "ok\n");
    seconds.push_back(o.seconds);
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

long mem_available_kib() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long value = 0;
  std::string unit;
  while (in >> key >> value >> unit) {
    if (key == "MemAvailable:") return value;
  }
  return -1;
}

TEST(VmHostileGuest, MemoryFillAndForkBombLeaveTheHostAndANeighbourResponsive) {
  std::string neighbour = create_started({});
  std::string attacker = create_started({"--memory", "256"});
  double idle = median_exec_seconds(neighbour, 9);
  long available_before = mem_available_kib();

  // `tail` buffers a line that never ends; the function forks two of
  // itself forever. Both run until the command's timeout.
  auto attack = std::async(std::launch::async, [&] {
    return run_moat({"exec", "--timeout", "25", attacker, "--", "sh", "-c",
                     "tail /dev/zero & tail /dev/zero & f() { f | f & }; f; sleep 30"});
  });
  ::sleep(8);  // the guest's memory full, its process table too
  double attacked = median_exec_seconds(neighbour, 9);
  long available_during = mem_available_kib();
  std::cerr << "neighbour's exec: idle " << idle << " s, during the attack " << attacked << " s ("
            << attacked / idle << "x); host MemAvailable " << available_before / 1024 << " -> "
            << available_during / 1024 << " MiB\n";
  // Loose: two cores, and the attacker's QEMU may take one of them (its quota).
  EXPECT_LT(attacked, 5 * idle + 0.5);
  // At most the attacker's cgroup limit (256 MiB RAM + 256 + 16 MiB) and some slack.
  EXPECT_LT(available_before - available_during, (256 + 256 + 16 + 256) * 1024L);

  // The attacker can still be told to stop, and goes.
  auto stopped = run_moat({"stop", attacker});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  attack.wait();
  EXPECT_EQ(run_moat({"rm", "-f", attacker}).exit_code, 0);
  auto o = run_moat({"exec", neighbour, "--", "echo", "still here"});
  EXPECT_EQ(o.out, "still here\n") << o.err;
  EXPECT_EQ(run_moat({"rm", "-f", neighbour}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// Root in the guest fills its writable disk: the guest gets ENOSPC at the
// disk's size, the host file (sparse) never takes more than that size of
// the host's disk, and the sandbox keeps answering and gets its space back.
TEST(VmHostileGuest, DiskFillStopsAtTheDisksSizeOnTheHost) {
  std::string id = create_started({"--disk-size", "64"});
  auto fill = run_moat({"exec", id, "--", "sh", "-c", "dd if=/dev/zero of=/fill bs=1M 2>&1; sync; echo filled"});
  EXPECT_NE(fill.out.find("No space left on device"), std::string::npos) << fill.out << fill.err;
  EXPECT_NE(fill.out.find("filled\n"), std::string::npos) << fill.out;
  struct stat st {};
  std::string upper = test_home() + "/sandboxes/" + id + "/upper.ext4";
  ASSERT_EQ(::stat(upper.c_str(), &st), 0) << upper;
  EXPECT_LE(st.st_size, 64LL << 20);
  EXPECT_LE(static_cast<long long>(st.st_blocks) * 512, 64LL << 20);
  auto freed = run_moat({"exec", id, "--", "sh", "-c", "rm /fill && echo freed > /after && cat /after"});
  EXPECT_EQ(freed.exit_code, 0) << freed.err;
  EXPECT_EQ(freed.out, "freed\n");
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
