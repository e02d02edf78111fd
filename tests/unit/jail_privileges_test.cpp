// Dropping privileges before exec (src/jail/privileges.h): the program
// exec'd after it, here cat reading its own status, holds no capability
// and cannot gain one.
#include "jail/privileges.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>

namespace moat::jail {
namespace {

// The status lines of a `cat /proc/self/status` started after the drop.
std::map<std::string, std::string> status_after_drop() {
  int out[2];
  EXPECT_EQ(::pipe(out), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    if (drop_privileges_before_exec() != 0) ::_exit(2);
    ::execl("/bin/cat", "cat", "/proc/self/status", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::map<std::string, std::string> fields;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[line.substr(0, colon)] = value;
  }
  return fields;
}

TEST(JailPrivileges, TheProgramExecdAfterwardsHoldsNoCapability) {
  bool root = ::geteuid() == 0;
  auto s = status_after_drop();
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapAmb"}) EXPECT_EQ(s[set], "0000000000000000") << set;
  EXPECT_EQ(s["NoNewPrivs"], "1");
  // Started as root (the tests run as root): nothing left to regain either.
  if (root) {
    EXPECT_EQ(s["CapBnd"], "0000000000000000");
  }
  EXPECT_EQ(s["Uid"].substr(0, s["Uid"].find('\t')), std::to_string(::geteuid())) << "the user stays";
}

}  // namespace
}  // namespace moat::jail
