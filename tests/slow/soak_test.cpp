// Soak: many sandboxes one after another, and lifecycle cycles four at a
// time. Afterwards nothing of them may be left: no process, mount, socket,
// temp file, cgroup, sandbox directory or record. Label slow: 1000 runs
// and 200 cycles take most of an hour under TCG (MOAT_SOAK_RUNS and
// MOAT_SOAK_CYCLES make them fewer for a quick check).
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "tests/slow/host_traces.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

TEST(SlowSoak, SequentialRunsLeaveNothing) {
  const int runs = count_from_env("MOAT_SOAK_RUNS", 1000);
  HostTraces before = traces();
  int failed = 0;
  for (int i = 0; i < runs; ++i) {
    auto o = run_moat({"run", "--rootfs-dir", busybox_rootfs(), "--", "true"});
    if (o.exit_code != 0 && ++failed <= 5) ADD_FAILURE() << "run " << i << ": " << o.exit_code << " " << o.err;
  }
  EXPECT_EQ(failed, 0) << "of " << runs;
  expect_nothing_left(before);
}

TEST(SlowSoak, ParallelLifecycleCyclesLeaveNothing) {
  const int cycles = count_from_env("MOAT_SOAK_CYCLES", 200);
  constexpr int kParallel = 4;
  HostTraces before = traces();
  auto worker = [&](int w) {
    int failed = 0;
    for (int i = w; i < cycles; i += kParallel) {
      std::string name = "soak-" + std::to_string(i);
      bool ok = run_moat({"create", "--name", name, "--rootfs-dir", busybox_rootfs()}).exit_code == 0 &&
                run_moat({"start", name}).exit_code == 0 &&
                run_moat({"exec", name, "--", "echo", name}).out == name + "\n" &&
                run_moat({"stop", name}).exit_code == 0 && run_moat({"rm", name}).exit_code == 0;
      if (!ok) {
        ++failed;
        (void)run_moat({"rm", "-f", name});
      }
    }
    return failed;
  };
  std::vector<std::future<int>> workers;
  for (int w = 0; w < kParallel; ++w) workers.push_back(std::async(std::launch::async, worker, w));
  int failed = 0;
  for (auto& w : workers) failed += w.get();
  EXPECT_EQ(failed, 0) << "cycles failed of " << cycles;
  expect_nothing_left(before);
}

}  // namespace
}  // namespace moat::test
