// kill -9 of the CLI at random moments of every lifecycle command. Whatever
// the moment, reconcile must leave the records true: a sandbox whose VM runs
// reads running (so stop and rm -f reach it), nothing of a removed sandbox is
// left, and no VM runs on untracked. Label slow: about ten minutes.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <random>
#include <string>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

constexpr int kRuns = 60;

std::string sandbox_dir(const std::string& id) { return test_home() + "/sandboxes/" + id; }

bool shows_state(const std::string& name, const std::string& state) {
  return inspected_field(name, "state") == state;
}

// After reconcile: processes of the sandbox only while it reads running. A
// shim whose starter was killed mid-boot ends itself; it is given a moment.
void expect_true_record(const std::string& name, int run, const std::string& what) {
  std::string id = inspected_field(name, "id");
  if (id.empty()) {
    // No record: nothing of it may run (any id: look for the name's dirs).
    for (const auto& left : leftover_sandboxes()) {
      EXPECT_TRUE(processes_mentioning(sandbox_dir(left)).empty())
          << "run " << run << " (" << what << "): a VM runs for " << left << " with no record";
    }
    return;
  }
  for (int i = 0; i < 200; ++i) {
    if (processes_mentioning(sandbox_dir(id)).empty() || shows_state(name, "running")) return;
    ::usleep(50000);
  }
  ADD_FAILURE() << "run " << run << " (" << what << "): a VM runs while the record of " << name
                << " does not say running:\n"
                << run_moat({"inspect", name}).out;
}

TEST(SlowKillInjection, KilledLifecycleCommandsLeaveTrueRecordsAndNoStrayVm) {
  std::mt19937 rng(20261202);
  const std::vector<std::string> ops = {"create", "start", "run", "restart", "rm"};
  for (int run = 0; run < kRuns; ++run) {
    const std::string name = "k" + std::to_string(run);
    const std::string op = ops[run % ops.size()];
    // Set up what the command acts on: a created sandbox for start, a
    // running one for restart and rm.
    if (op == "start" || op == "restart" || op == "rm") {
      auto c = run_moat({"create", "--name", name, "--rootfs-dir", busybox_rootfs()});
      ASSERT_EQ(c.exit_code, 0) << c.err;
      if (op != "start") {
        ASSERT_EQ(run_moat({"start", name}).exit_code, 0);
      }
    }
    std::vector<std::string> args;
    if (op == "create") args = {"create", "--name", name, "--rootfs-dir", busybox_rootfs()};
    if (op == "start") args = {"start", name};
    if (op == "run") args = {"run", "--name", name, "--rootfs-dir", busybox_rootfs(), "--", "sleep", "30"};
    if (op == "restart") args = {"restart", name};
    if (op == "rm") args = {"rm", "-f", name};
    int delay_ms = std::uniform_int_distribution<int>(0, 4000)(rng);
    auto cli = spawn_moat(args);
    ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
    ::kill(cli.pid, SIGKILL);
    finish(cli, 60);
    std::string what = op + " killed after " + std::to_string(delay_ms) + " ms";

    ASSERT_EQ(run_moat({"ls"}).exit_code, 0) << what;
    expect_true_record(name, run, what);
    // Whatever is left can be removed, and then nothing of it remains.
    std::string id = inspected_field(name, "id");
    if (!id.empty()) {
      auto rm = run_moat({"rm", "-f", name});
      EXPECT_EQ(rm.exit_code, 0) << what << ": " << rm.err;
      EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty()) << what << ": rm -f left a process";
    }
    // A create killed before its insert leaves a directory that ls removes
    // once it is 10 s old; wait for that only when it happened.
    for (int i = 0; i < 30 && !leftover_sandboxes().empty(); ++i) {
      ::sleep(1);
      (void)run_moat({"ls"});
    }
    EXPECT_TRUE(leftover_sandboxes().empty()) << what << ": a sandbox directory is left";
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace moat::test
