// Argv, paths, user names and file names that are not UTF-8: POSIX bytes go
// through exec, cp, run and the records exactly, and nothing of moat aborts
// (a JSON dump of such bytes once threw out of the shim and killed the VM).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

const std::string kCafe = "caf\xe9";  // Latin-1 "café": not UTF-8

std::string scratch(const std::string& name) {
  std::string dir = test_home() + "/scratch-" + name;
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// An abort (an escaped exception) would show as 134 and this text.
void expect_no_abort(const Outcome& o) {
  EXPECT_NE(o.exit_code, 134) << o.err;
  EXPECT_EQ(o.err.find("terminate called"), std::string::npos) << o.err;
}

TEST(VmBytes, ExecArgvWorkdirUserAndCpWithNonUtf8Bytes) {
  std::string id = create_sandbox();

  auto echo = run_moat({"exec", id, "--", "echo", kCafe});
  EXPECT_EQ(echo.exit_code, 0) << echo.err;
  EXPECT_EQ(echo.out, kCafe + "\n");

  auto env = run_moat({"exec", "-e", "V=" + kCafe, id, "--", "sh", "-c", "printf '%s' \"$V\""});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(env.out, kCafe);

  auto cwd = run_moat({"exec", "-w", "/" + kCafe, id, "--", "true"});
  expect_no_abort(cwd);
  EXPECT_EQ(cwd.exit_code, 125);
  EXPECT_EQ(cwd.err, "moat: working directory /" + kCafe + " does not exist\n");

  auto user = run_moat({"exec", "-u", kCafe, id, "--", "true"});
  expect_no_abort(user);
  EXPECT_EQ(user.exit_code, 125);
  EXPECT_NE(user.err.find("unable to find user " + kCafe), std::string::npos) << user.err;

  // A missing file is a clean error naming its bytes; an existing one copies.
  std::string dir = scratch("bytes-cp");
  auto missing = run_moat({"cp", id + ":/" + kCafe, dir + "/x"});
  expect_no_abort(missing);
  EXPECT_EQ(missing.exit_code, 125);  // moat's own error
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
  ASSERT_EQ(run_moat({"exec", id, "--", "sh", "-c", "echo hi > /tmp/" + kCafe}).exit_code, 0);
  auto out = run_moat({"cp", id + ":/tmp/" + kCafe, dir + "/" + kCafe});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(slurp(dir + "/" + kCafe), "hi\n");
  auto in = run_moat({"cp", dir + "/" + kCafe, id + ":/tmp/in-" + kCafe});
  EXPECT_EQ(in.exit_code, 0) << in.err;
  // (busybox ls shows unprintable bytes as '?'; the shell's glob does not.)
  auto ls = run_moat({"exec", id, "--", "sh", "-c", "for f in /tmp/in-*; do echo \"$f\"; cat \"$f\"; done"});
  EXPECT_EQ(ls.out, "/tmp/in-" + kCafe + "\nhi\n") << ls.err;
  // Names past 100 bytes travel in pax records, both ways.
  std::string longname = std::string(120, 'l') + kCafe;
  fs::create_directories(dir + "/tree");
  { std::ofstream(dir + "/tree/" + longname) << "long\n"; }
  auto tin = run_moat({"cp", dir + "/tree", id + ":/tmp"});
  EXPECT_EQ(tin.exit_code, 0) << tin.err;
  auto cat = run_moat({"exec", id, "--", "cat", "/tmp/tree/" + longname});
  EXPECT_EQ(cat.out, "long\n") << cat.err;
  auto tout = run_moat({"cp", id + ":/tmp/tree", dir + "/back"});
  EXPECT_EQ(tout.exit_code, 0) << tout.err;
  EXPECT_EQ(slurp(dir + "/back/" + longname), "long\n");

  // The sandbox survived all of it, and its history reads back the bytes.
  auto alive = run_moat({"exec", id, "--", "echo", "alive"});
  EXPECT_EQ(alive.exit_code, 0) << alive.err;
  EXPECT_EQ(alive.out, "alive\n");
  auto logs = run_moat({"logs", id});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("] exec echo " + kCafe + "\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] error: working directory /" + kCafe + " does not exist\n"), std::string::npos)
      << logs.out;
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

TEST(VmBytes, RunWithNonUtf8CommandKeepsItsRecordReadable) {
  auto run = run_moat({"run", "--name", "bytes-run", "--rootfs-dir", busybox_rootfs(), "--", "echo", "\xe9"});
  expect_no_abort(run);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "\xe9\n");
  auto inspect = run_moat({"inspect", "bytes-run"});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;
  // Shown replaced (U+FFFD) in JSON for people; the record keeps the bytes.
  EXPECT_NE(inspect.out.find("\"echo\",\n      \"\xef\xbf\xbd\""), std::string::npos) << inspect.out;
  auto ls = run_moat({"ls", "--format", "json"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  auto again = run_moat({"start", "bytes-run"});  // boots the stored command's record again
  EXPECT_EQ(again.exit_code, 0) << again.err;
  auto echo = run_moat({"exec", "bytes-run", "--", "echo", "\xe9"});
  EXPECT_EQ(echo.out, "\xe9\n");
  EXPECT_EQ(run_moat({"rm", "-f", "bytes-run"}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmBytes, NonUtf8LabelIsRefusedBeforeAnythingIsMade) {
  auto o = run_moat({"run", "--label", "k=\xe9", "--rootfs-dir", busybox_rootfs(), "--", "true"});
  expect_no_abort(o);
  EXPECT_EQ(o.exit_code, 125);
  EXPECT_EQ(o.err, "moat: --label k=\xef\xbf\xbd: labels must be UTF-8 text\n");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmBytes, VolumeFromANonUtf8HostPath) {
  std::string host = scratch("bytes-vol") + "/" + kCafe;
  fs::create_directories(host);
  { std::ofstream(host + "/f") << "from the host\n"; }
  auto o = run_moat({"run", "-v", host + ":/d", "--rootfs-dir", busybox_rootfs(), "--", "cat", "/d/f"});
  expect_no_abort(o);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "from the host\n");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmBytes, NonUtf8HostnameDoesNotAbort) {
  // Whether it is refused (RFC 1123) or used, nothing aborts or stays behind.
  auto o = run_moat({"run", "--hostname", "\xe9", "--rootfs-dir", busybox_rootfs(), "--", "true"});
  expect_no_abort(o);
  EXPECT_TRUE(o.exit_code == 0 || o.exit_code == 125) << o.exit_code << " " << o.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
