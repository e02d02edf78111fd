// A guest that sends wrongly typed fields (tests/vm/fake_agent.py, run in
// place of QEMU): the shim, the CLI and the exec history take them as
// errors or fallbacks, and the sandbox keeps serving.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

// The script sits beside its wrapper: a jailed QEMU's root holds its own
// directory and /usr, not the source tree.
std::vector<std::string> fake_env() {
  std::stringstream agent_source;
  agent_source << std::ifstream(MOAT_VM_TEST_DIR "/fake_agent.py").rdbuf();
  std::string agent = write_fake_qemu("fake_agent.py", agent_source.str());
  return {"MOAT_QEMU=" + write_fake_qemu("fake-agent-qemu", "#!/bin/sh\nexec python3 " + agent + " \"$@\"\n")};
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

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A guest floods the serial console, QEMU's stderr, the shim's log (control
// errors, as fast as it can send them) and the exec history (huge error
// messages). Every log stays under the cap, with one older generation, and
// the shim's log says how many lines it left out instead of writing them.
TEST(VmHostileAgent, EveryLogTheGuestFloodsStaysUnderItsCap) {
  constexpr long long kCap = 16384;
  auto env = fake_env();
  auto created = run_moat({"create", "--name", "flood", "--log-size", "16k", "--rootfs-dir", busybox_rootfs()}, "", env);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  std::string dir = test_home() + "/sandboxes/" + id;
  auto started = run_moat({"start", "flood"}, "", env);
  ASSERT_EQ(started.exit_code, 0) << started.err;

  EXPECT_EQ(run_moat({"exec", "flood", "--", "flood-console", "300000"}, "", env).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "flood", "--", "flood-stderr", "300000"}, "", env).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "flood", "--", "flood-errors", "20000"}, "", env).exit_code, 0);
  // Error messages of the longest kind the shim takes (4096 bytes).
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(run_moat({"exec", "flood", "--", "big-error", "4000"}, "", env).exit_code, 125);
  auto stopped = run_moat({"stop", "flood"}, "", env);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;

  for (std::string name : {"console.log", "qemu.log", "shim.log", "exec.log"}) {
    EXPECT_LE(file_size(dir + "/" + name), kCap) << name;
    EXPECT_LE(file_size(dir + "/" + name + ".1"), kCap) << name << ".1";
  }
  for (std::string name : {"console.log", "qemu.log", "exec.log"}) {
    EXPECT_GT(file_size(dir + "/" + name + ".1"), 0) << name << " was never rotated";
    EXPECT_GT(file_size(dir + "/" + name), 0) << name;
  }
  // The newest output is what is kept, whole: the flood's last line ends
  // the console.
  std::string console = read_text(dir + "/console.log");
  EXPECT_EQ(console.find_first_not_of("x\n"), std::string::npos);
  EXPECT_EQ(console.substr(console.size() - 81), "\n" + std::string(79, 'x') + "\n");

  // Each flood line is either in the log or counted in a summary.
  std::string shim = read_text(dir + "/shim.log.1") + read_text(dir + "/shim.log");
  std::size_t logged = 0, suppressed = 0;
  for (std::size_t at = 0; (at = shim.find("agent error: flood ", at)) != std::string::npos; ++at) ++logged;
  std::regex summary("([0-9]+) similar lines? suppressed");
  for (std::sregex_iterator it(shim.begin(), shim.end(), summary), end; it != end; ++it)
    suppressed += std::stoul((*it)[1].str());
  EXPECT_GT(suppressed, 0u) << shim;
  EXPECT_EQ(logged + suppressed, 20000u) << shim;

  EXPECT_EQ(run_moat({"rm", "-f", "flood"}, "", env).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
