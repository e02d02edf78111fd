// kill -9 of a sandbox's shim or QEMU at random moments of lifecycle
// commands (start, exec, stop, restart). Whatever dies, the command that was
// running ends, `moat ls` stays true (a VM runs only while its record says
// running; a sandbox whose shim or QEMU died reads stopped or crashed, not
// running), the sandbox can still be started again, and `rm -f` leaves
// nothing: no process, directory, cgroup or record. Label slow: 50 kills
// of each (MOAT_CHAOS_RUNS makes them fewer).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "tests/slow/host_traces.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string state_of(const std::string& name) { return inspected_field(name, "state"); }

// The victim's pid at this moment: the shim (its pid file) or its QEMU.
pid_t victim_pid(const std::string& dir, bool shim) {
  if (!shim) return qemu_of(dir);
  for (pid_t p : processes_mentioning(dir)) {
    std::ifstream cmd("/proc/" + std::to_string(p) + "/cmdline");
    std::string argv0;
    std::getline(cmd, argv0, '\0');
    if (argv0.ends_with("moat-shim")) {
      std::string arg1;
      std::getline(cmd, arg1, '\0');
      if (arg1 == dir) return p;
    }
  }
  return -1;
}

// A VM runs only while the record says running; a shim that lost its
// QEMU, or a QEMU whose shim died, is given a moment to end.
void expect_true_record(const std::string& name, const std::string& dir, const std::string& what) {
  for (int i = 0; i < 200; ++i) {
    std::string state = state_of(name);
    bool runs = !processes_mentioning(dir).empty();
    if (runs == (state == "running")) return;
    ::usleep(50000);
  }
  ADD_FAILURE() << what << ": record says " << state_of(name) << " while "
                << processes_mentioning(dir).size() << " of its processes run";
}

TEST(SlowChaos, KilledShimOrQemuLeavesTrueRecordsAndRmLeavesNothing) {
  const int runs = 2 * count_from_env("MOAT_CHAOS_RUNS", 50);
  HostTraces before = traces();
  std::mt19937 rng(20261204);
  const std::vector<std::string> ops = {"start", "exec", "stop", "restart"};
  int shim_kills = 0, qemu_kills = 0, missed = 0;
  for (int run = 0; run < runs; ++run) {
    bool shim = run % 2 == 0;
    const std::string op = ops[(run / 2) % ops.size()];
    const std::string name = "c" + std::to_string(run);
    auto c = run_moat({"create", "--name", name, "--rootfs-dir", busybox_rootfs()});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    std::string id = inspected_field(name, "id");
    std::string dir = test_home() + "/sandboxes/" + id;
    if (op != "start") {
      ASSERT_EQ(run_moat({"start", name}).exit_code, 0);
    }
    std::vector<std::string> args = {op, name};
    if (op == "exec") args = {"exec", name, "--", "sh", "-c", "echo one; sleep 1; echo two"};
    int delay_ms = std::uniform_int_distribution<int>(0, 2500)(rng);
    auto cli = spawn_moat(args);
    ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
    pid_t victim = victim_pid(dir, shim);
    if (victim > 0) {
      ::kill(victim, SIGKILL);
      ++(shim ? shim_kills : qemu_kills);
    } else {
      ++missed;
    }
    std::string what = std::string(shim ? "shim" : "QEMU") + (victim > 0 ? " killed " : " not running ") +
                       std::to_string(delay_ms) + " ms into " + op;
    (void)finish(cli, 120);  // a failure of its own if the command hangs

    ASSERT_EQ(run_moat({"ls"}).exit_code, 0) << what;
    expect_true_record(name, dir, what);
    // What is left of it still works: it starts again and runs a command.
    if (state_of(name) != "running") {
      auto started = run_moat({"start", name});
      EXPECT_EQ(started.exit_code, 0) << what << ": start after: " << started.err;
    }
    auto o = run_moat({"exec", name, "--", "echo", "alive"});
    EXPECT_EQ(o.out, "alive\n") << what << ": " << o.err;
    auto rm = run_moat({"rm", "-f", name});
    EXPECT_EQ(rm.exit_code, 0) << what << ": " << rm.err;
    EXPECT_TRUE(processes_mentioning(dir).empty()) << what << ": rm -f left a process";
    if (::testing::Test::HasFailure()) break;
  }
  std::cerr << "chaos: " << shim_kills << " shims and " << qemu_kills << " QEMUs killed; " << missed
            << " times the victim was not running at that moment\n";
  expect_nothing_left(before);
}

}  // namespace
}  // namespace moat::test
