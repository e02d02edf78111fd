// A real guest that writes to its serial console as fast as it can: the
// shim, not QEMU, writes console.log, and keeps it and its one older
// generation under the sandbox's cap; the guest keeps working meanwhile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(VmLogCap, AGuestFloodingItsConsoleCannotGrowConsoleLogPastTheCap) {
  constexpr long long kCap = 16384;
  auto created = run_moat({"create", "--log-size", "16k", "--rootfs-dir", busybox_rootfs()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  std::string dir = test_home() + "/sandboxes/" + id;
  ASSERT_EQ(run_moat({"start", id}).exit_code, 0);

  // 2000 lines of 100 bytes: twelve caps' worth.
  std::string line(99, 'y');
  auto flood = run_moat({"exec", id, "--", "sh", "-c",
                         "i=0; while [ $i -lt 2000 ]; do echo " + line + "; i=$((i+1)); done > /dev/console; echo done"});
  EXPECT_EQ(flood.exit_code, 0) << flood.err;
  EXPECT_EQ(flood.out, "done\n");
  auto after = run_moat({"exec", id, "--", "echo", "still here"});
  EXPECT_EQ(after.out, "still here\n");
  ASSERT_EQ(run_moat({"stop", id}).exit_code, 0);

  EXPECT_LE(file_size(dir + "/console.log"), kCap);
  EXPECT_LE(file_size(dir + "/console.log.1"), kCap);
  EXPECT_GT(file_size(dir + "/console.log.1"), 0);
  // The newest text is kept: the last line of the flood is in the console
  // (the guest's terminal ends lines with CR LF).
  EXPECT_NE(read_text(dir + "/console.log").find(line + "\r\n"), std::string::npos);
  // `moat logs` shows both generations and nothing more.
  auto logs = run_moat({"logs", id});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_LE(static_cast<long long>(logs.out.size()), 2 * kCap + 4096);
  EXPECT_NE(logs.out.find(line), std::string::npos);
  EXPECT_EQ(run_moat({"rm", id}).exit_code, 0);
}


// `moat logs -f` (read_sandbox_logs with follow): what the console gains
// arrives while it runs, and it ends when the sandbox stops.
TEST(VmLogCap, LogsFollowTheConsoleUntilTheSandboxStops) {
  std::string id = create_sandbox();
  auto follow = spawn_moat({"logs", "-f", id});
  ::sleep(1);
  auto mark = run_moat({"exec", id, "--", "sh", "-c", "echo follow-marker-1 > /dev/console"});
  EXPECT_EQ(mark.exit_code, 0) << mark.err;
  std::string seen = read_until(follow.out_fd, "follow-marker-1", 30);
  EXPECT_NE(seen.find("follow-marker-1"), std::string::npos) << seen;
  ASSERT_EQ(run_moat({"stop", id}).exit_code, 0);
  auto ended = finish(follow, 30);
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  // The history was printed before following began: the exec comes later.
  EXPECT_EQ(seen.find("--- commands ---"), std::string::npos) << seen;
  auto logs = run_moat({"logs", id});
  EXPECT_NE(logs.out.find("--- commands ---\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] exec sh -c echo follow-marker-1 > /dev/console\n"), std::string::npos) << logs.out;
  EXPECT_EQ(run_moat({"rm", id}).exit_code, 0);
}
}  // namespace
}  // namespace moat::test
