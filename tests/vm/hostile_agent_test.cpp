// A guest that sends wrongly typed fields (tests/vm/fake_agent.py, run in
// place of QEMU): the shim, the CLI and the exec history take them as
// errors or fallbacks, and the sandbox keeps serving.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::vector<std::string> fake_env() {
  std::string qemu = test_home() + "/fake-agent-qemu";
  std::ofstream(qemu) << "#!/bin/sh\nexec python3 " MOAT_VM_TEST_DIR "/fake_agent.py \"$@\"\n";
  ::chmod(qemu.c_str(), 0755);
  return {"MOAT_QEMU=" + qemu};
}

TEST(VmHostileAgent, WronglyTypedFieldsNeitherKillTheShimNorAbortTheCli) {
  auto env = fake_env();
  auto created = run_moat({"create", "--name", "hostile", "--rootfs-dir", busybox_rootfs()}, "", env);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // The agent's hello has an integer "agent", then control errors with an
  // integer and a non-UTF-8 message arrive: the shim logs them and serves.
  auto started = run_moat({"start", "hostile"}, "", env);
  ASSERT_EQ(started.exit_code, 0) << started.err;

  auto int_end = run_moat({"exec", "hostile", "--", "int-end"}, "", env);
  EXPECT_EQ(int_end.exit_code, 125);
  EXPECT_EQ(int_end.err, "moat: unknown error\n");
  auto bytes_end = run_moat({"exec", "hostile", "--", "bytes-end"}, "", env);
  EXPECT_EQ(bytes_end.exit_code, 125);
  EXPECT_EQ(bytes_end.err, "moat: caf\xe9\n");
  auto notice = run_moat({"exec", "hostile", "--", "int-notice"}, "", env);
  EXPECT_EQ(notice.exit_code, 0) << notice.err;
  EXPECT_EQ(notice.out, "ok\n");
  auto echo = run_moat({"exec", "hostile", "--", "echo", "caf\xe9"}, "", env);
  EXPECT_EQ(echo.exit_code, 0) << echo.err;
  EXPECT_EQ(echo.out, "echo caf\xe9\n");

  auto logs = run_moat({"logs", "hostile"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("] exec int-end\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] error: \n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] error: caf\xe9\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] exit 0\n"), std::string::npos) << logs.out;

  auto inspect = run_moat({"inspect", "hostile"});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("\"state\": \"running\""), std::string::npos) << inspect.out;
  EXPECT_EQ(run_moat({"rm", "-f", "hostile"}, "", env).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// A wedged agent never reports a timeout or a signal: the CLI keeps its own
// clocks, cancels the command and exits as the command would have.
TEST(VmHostileAgent, AWedgedAgentCannotHoldTheCli) {
  auto env = fake_env();
  auto created = run_moat({"run", "-d", "--name", "wedged", "--rootfs-dir", busybox_rootfs()}, "", env);
  ASSERT_EQ(created.exit_code, 0) << created.err;

  auto timed = run_moat({"exec", "--timeout", "2", "wedged", "--", "wedge"}, "", env, 60);
  EXPECT_EQ(timed.exit_code, 124);
  EXPECT_EQ(timed.err,
            "moat: wedge did not end within its timeout of 2 s and the sandbox did not report it killed; "
            "it was cancelled\n");

  // A second SIGTERM ends the wait at once.
  auto twice = spawn_moat({"exec", "wedged", "--", "wedge"}, env);
  ::sleep(1);
  ::kill(twice.pid, SIGTERM);
  ::usleep(200 * 1000);
  ::kill(twice.pid, SIGTERM);
  auto ended = finish(twice, 30);
  EXPECT_EQ(ended.exit_code, 128 + SIGTERM);
  EXPECT_EQ(ended.err, "moat: wedge did not end after SIGTERM; it was cancelled and may still be ending in the sandbox\n");

  // One SIGINT, then silence from the guest: the wait ends after the grace.
  auto once = spawn_moat({"exec", "wedged", "--", "wedge"}, env);
  ::sleep(1);
  ::kill(once.pid, SIGINT);
  auto ended_once = finish(once, 60);
  EXPECT_EQ(ended_once.exit_code, 128 + SIGINT);
  EXPECT_EQ(ended_once.err, "moat: wedge did not end after SIGINT; it was cancelled and may still be ending in the sandbox\n");

  // The sandbox still serves.
  auto echo = run_moat({"exec", "wedged", "--", "echo", "hi"}, "", env);
  EXPECT_EQ(echo.exit_code, 0) << echo.err;
  EXPECT_EQ(echo.out, "echo hi\n");
  EXPECT_EQ(run_moat({"rm", "-f", "wedged"}, "", env).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// A guest kernel that panics makes QEMU exit as cleanly as a power-off does
// (-no-reboot); the console tells them apart. The sandbox reads crashed, with
// the panic line and the console's tail, the guest's control bytes defused.
TEST(VmHostileAgent, AKernelPanicIsACrashWithTheConsoleTail) {
  auto env = fake_env();
  auto created = run_moat({"run", "-d", "--name", "panics", "--rootfs-dir", busybox_rootfs()}, "", env);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto panic = run_moat({"exec", "panics", "--", "panic"}, "", env);
  EXPECT_EQ(panic.exit_code, 125);
  auto inspect = run_moat({"inspect", "panics"});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("\"state\": \"crashed\""), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("the guest kernel panicked: Kernel panic - not syncing: Attempted to kill init! "
                             "exitcode=0x0000000b\\nconsole:\\n[    1.0] moat-agent: bad things\\n?[31mred\xef\xbf\xbd\""),
            std::string::npos)
      << inspect.out;
  EXPECT_EQ(run_moat({"rm", "panics"}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
