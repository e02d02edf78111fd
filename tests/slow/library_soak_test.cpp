// Soak of a long-lived process that uses the library in-process (as the
// server and the SDKs do): 200 sandboxes created, used, stopped and removed
// one after another. Its RSS and its open descriptors must stay flat, and
// nothing of the sandboxes may be left. Label slow (MOAT_SOAK_LIB_CYCLES
// makes it shorter).
#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "moat/runtime.h"
#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "tests/slow/host_traces.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

long rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

// One sandbox's whole life through the C++ API; "" or what went wrong.
std::string one_cycle() {
  SandboxOptions o;
  o.rootfs_dir = busybox_rootfs();
  auto sb = Sandbox::create(o);
  if (!sb) return "create: " + sb.error().message;
  std::string out;
  ExecIo io;
  io.on_stdout = [&](std::string_view s) { out.append(s); };
  ExecOptions echo;
  echo.argv = {"echo", "cycle"};
  auto st = sb->exec(echo, io);
  if (!st || st->code != 0 || out != "cycle\n") return "exec: " + (st ? out : st.error().message);
  std::string id = sb->id();
  if (auto stopped = sb->stop(); !stopped) return "stop: " + stopped.error().message;
  if (auto removed = remove_sandbox(id); !removed) return "remove: " + removed.error().message;
  return "";
}

TEST(SlowSoak, ALongLivedLibraryProcessStaysFlat) {
  const int cycles = count_from_env("MOAT_SOAK_LIB_CYCLES", 200);
  RuntimeOptions rt;
  rt.home = test_home();
  rt.cache_dir = std::string(MOAT_BIN_DIR) + "/../test-cache";
  ASSERT_TRUE(configure_runtime(rt).ok());
  HostTraces before = traces();
  // The first cycles settle what is made once (the SQLite handles, TLS
  // state, the allocator's arenas); the bound is on what follows them.
  constexpr int kWarmUp = 20;
  long rss_after_warm_up = 0;
  int fds_after_warm_up = 0, failed = 0;
  for (int i = 0; i < cycles; ++i) {
    std::string why = one_cycle();
    if (!why.empty() && ++failed <= 5) ADD_FAILURE() << "cycle " << i << ": " << why;
    if (i + 1 == std::min(kWarmUp, cycles)) {
      rss_after_warm_up = rss_kib();
      fds_after_warm_up = open_fds();
    }
  }
  EXPECT_EQ(failed, 0) << "of " << cycles;
  long rss_end = rss_kib();
  std::printf("library soak: %d cycles, RSS %ld KiB after %d, %ld KiB at the end; fds %d then %d\n", cycles,
              rss_after_warm_up, kWarmUp, rss_end, fds_after_warm_up, open_fds());
  EXPECT_EQ(open_fds(), fds_after_warm_up) << "descriptors leaked";
  EXPECT_LE(rss_end - rss_after_warm_up, 4 * 1024) << "RSS grew by more than 4 MiB over the cycles";
  expect_nothing_left(before);
}

}  // namespace
}  // namespace moat::test
