// What sandboxes may leave on the host, for the slow tests that check
// nothing is left after many of them: temp files, cgroups, mounts, sockets,
// sandbox directories, processes and records.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "tests/vm/harness.h"

namespace moat::test {

// A run count a slow test takes from the environment for a quick check.
inline int count_from_env(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

// What a sandbox may leave on the host, as names (for a readable diff).
struct HostTraces {
  std::set<std::string> temp_files;  // /tmp and /dev/shm entries named moat*
  std::set<std::string> cgroups;     // moat-* groups anywhere under /sys/fs/cgroup
  std::set<std::string> mounts;      // mount points under the test home
  std::set<std::string> sockets;     // unix sockets under the test home
};

inline void collect_named(const std::string& dir, const std::string& prefix, int depth, std::set<std::string>* out) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) == 0) out->insert(it->path().string());
    if (depth > 0 && it->is_directory(ec) && !it->is_symlink(ec)) collect_named(it->path(), prefix, depth - 1, out);
  }
}

inline HostTraces traces() {
  (void)test_home();  // made on first use: not a trace of the runs
  HostTraces t;
  collect_named("/tmp", "moat", 0, &t.temp_files);
  collect_named("/dev/shm", "moat", 0, &t.temp_files);
  collect_named("/sys/fs/cgroup", "moat-", 4, &t.cgroups);
  std::ifstream info("/proc/self/mountinfo");
  for (std::string line; std::getline(info, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point.rfind(test_home(), 0) == 0) t.mounts.insert(point);
  }
  std::ifstream unix_sockets("/proc/net/unix");
  for (std::string line; std::getline(unix_sockets, line);) {
    auto at = line.find(test_home());
    if (at != std::string::npos) t.sockets.insert(line.substr(at));
  }
  return t;
}

inline std::string listed(const std::set<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += "  " + n + "\n";
  return s;
}

inline void expect_nothing_left(const HostTraces& before) {
  HostTraces after = traces();
  EXPECT_EQ(after.temp_files, before.temp_files) << listed(after.temp_files);
  EXPECT_EQ(after.cgroups, before.cgroups) << listed(after.cgroups);
  EXPECT_EQ(after.mounts, before.mounts) << listed(after.mounts);
  EXPECT_EQ(after.sockets, before.sockets) << listed(after.sockets);
  EXPECT_TRUE(leftover_sandboxes().empty());
  EXPECT_TRUE(processes_mentioning(test_home() + "/sandboxes/").empty());
  auto ls = run_moat({"ls", "-q"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out, "") << "records left";
}

}  // namespace moat::test
