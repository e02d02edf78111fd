// A guest that takes the agent's end of the channel and attacks the host
// side with it (tests/vm/guest/channel_fuzzer.cpp): random and adversarial
// frames for a fixed time. The shim never crashes and stays within a memory
// bound, a client of the attacked sandbox always gets an answer or an error
// (never a hang or a crash), a neighbouring sandbox is not disturbed, and
// the attacked sandbox still stops and is removed. 20 s in `make test`;
// MOAT_CHANNEL_FUZZ_SECONDS sets it (the slow label's runs give it longer).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

constexpr long kShimRssBoundKib = 128 * 1024;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long rss_kib(const std::string& pid) {
  std::istringstream lines(read_text("/proc/" + pid + "/status"));
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

std::string started(const std::vector<std::string>& env) {
  auto created = run_moat({"create", "--rootfs-dir", busybox_rootfs()}, "", env);
  EXPECT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  auto start = run_moat({"start", id}, "", env);
  EXPECT_EQ(start.exit_code, 0) << start.err;
  return id;
}

double exec_seconds(const std::string& id) {
  auto o = run_moat({"exec", id, "--", "echo", "ok"});
  EXPECT_EQ(o.out, "ok\n") << o.err;
  return o.seconds;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

TEST(VmHostileChannel, AFuzzingGuestNeitherCrashesTheShimNorDisturbsOthers) {
  const char* env_seconds = std::getenv("MOAT_CHANNEL_FUZZ_SECONDS");
  const int seconds = env_seconds != nullptr && std::atoi(env_seconds) > 0 ? std::atoi(env_seconds) : 20;
  std::string neighbour = started({});
  std::vector<double> idle;
  for (int i = 0; i < 5; ++i) idle.push_back(exec_seconds(neighbour));

  std::string attacked = started({"MOAT_INITRAMFS=" MOAT_CHANNEL_FUZZER_INITRAMFS});
  ASSERT_FALSE(attacked.empty());
  std::string dir = test_home() + "/sandboxes/" + attacked;
  std::string shim = read_text(dir + "/shim.pid");
  shim = shim.substr(0, shim.find('\n'));
  ASSERT_FALSE(shim.empty());
  auto console = [&] { return read_text(dir + "/console.log").substr(0, 4000); };

  std::vector<double> during;
  long max_rss = 0;
  int client_calls = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(::kill(std::stoi(shim), 0), 0) << "the shim died; console:\n" << console() << "\nshim.log:\n"
                                              << read_text(dir + "/shim.log");
    max_rss = std::max(max_rss, rss_kib(shim));
    // A client of the attacked sandbox: an answer or an error, in time.
    auto o = run_moat({"exec", "--timeout", "3", attacked, "--", "true"}, "", {}, 60);
    EXPECT_GE(o.exit_code, 0);
    EXPECT_LT(o.exit_code, 128) << "the CLI crashed: " << o.err;
    ++client_calls;
    during.push_back(exec_seconds(neighbour));
  }
  EXPECT_EQ(::kill(std::stoi(shim), 0), 0) << "the shim died; console:\n" << console();
  EXPECT_LT(max_rss, kShimRssBoundKib) << "the shim grew under the attack";
  std::cerr << "channel fuzz " << seconds << " s: " << client_calls << " client calls; shim RSS max " << max_rss / 1024
            << " MiB; neighbour exec " << median(idle) << " s idle, " << median(during) << " s during\n"
            << console().substr(0, 200) << "\n";
  // Loose, as in hostile_guest_test: two cores, one of them the attacker's.
  EXPECT_LT(median(during), 5 * median(idle) + 0.5);

  auto stopped = run_moat({"stop", attacked});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(run_moat({"rm", "-f", attacked}).exit_code, 0);
  EXPECT_TRUE(processes_mentioning(dir).empty());
  auto o = run_moat({"exec", neighbour, "--", "echo", "still here"});
  EXPECT_EQ(o.out, "still here\n") << o.err;
  EXPECT_EQ(run_moat({"rm", "-f", neighbour}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
