// `moat stats` (include/moat/stats.h): the counters of a running sandbox
// come from its own group and match its limits; a busy guest shows as one
// busy CPU and no more (its --cpus quota); the guest's packets are counted;
// a sandbox that is not running is an error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;

Json stats_of(const std::string& name) {
  auto o = run_moat({"stats", "--json", name});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  Json all = Json::parse(o.out, nullptr, false);
  EXPECT_TRUE(all.is_array() && all.size() == 1) << o.out;
  return all.is_array() && all.size() == 1 ? all[0] : Json::object();
}

TEST(VmStats, CountersComeFromTheSandboxesGroupAndHoldItsLimits) {
  auto created = run_moat({"create", "--name", "busy", "--memory", "256", "--cpus", "1", "--rootfs-dir",
                           busybox_rootfs()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto not_running = run_moat({"stats", "busy"});
  EXPECT_EQ(not_running.exit_code, 125);
  EXPECT_NE(not_running.err.find("sandbox busy is not running"), std::string::npos) << not_running.err;
  ASSERT_EQ(run_moat({"start", "busy"}).exit_code, 0);

  Json idle = stats_of("busy");
  // Run as root here, so QEMU has a group: RAM + 256 MiB (+ TCG's 16 MiB
  // translation cache under TCG), 512 tasks.
  bool tcg = run_moat({"doctor"}).out.find("\naccelerator    tcg") != std::string::npos;
  EXPECT_TRUE(idle["source"] == "cgroup v1" || idle["source"] == "cgroup v2") << idle.dump();
  EXPECT_EQ(idle["memory_limit_bytes"], static_cast<std::uint64_t>(256 + 256 + (tcg ? 16 : 0)) << 20);
  EXPECT_EQ(idle["pids_limit"], 512u);
  EXPECT_GT(idle["memory_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_LT(idle["memory_bytes"].get<std::uint64_t>(), idle["memory_limit_bytes"].get<std::uint64_t>());
  EXPECT_GE(idle["pids"].get<std::uint64_t>(), 2u) << "QEMU's main thread and its vCPU at least";
  EXPECT_EQ(idle["oom_kills"], 0u);
  EXPECT_GT(idle["uptime_ms"].get<std::uint64_t>(), 0u);

  // A spinning guest: one CPU's worth, held under the quota of --cpus 1.
  ASSERT_EQ(run_moat({"exec", "busy", "--", "sh", "-c", "while :; do :; done >/dev/null 2>&1 &"}).exit_code, 0);
  Json busy = stats_of("busy");
  double cpu = busy["cpu_percent"].get<double>();
  EXPECT_GT(cpu, 50.0) << busy.dump();
  EXPECT_LT(cpu, 130.0) << "more than the one CPU --cpus 1 allows: " << busy.dump();
  EXPECT_GT(busy["cpu_ns"].get<std::uint64_t>(), idle["cpu_ns"].get<std::uint64_t>());

  // A name lookup is frames the guest sent (to the sandbox's resolver).
  (void)run_moat({"exec", "busy", "--", "sh", "-c", "nslookup stats.test >/dev/null 2>&1; true"});
  Json after = stats_of("busy");
  EXPECT_GT(after["net_tx_packets"].get<std::uint64_t>(), busy["net_tx_packets"].get<std::uint64_t>());
  EXPECT_GT(after["net_tx_bytes"].get<std::uint64_t>(), busy["net_tx_bytes"].get<std::uint64_t>());

  // The table for people: one header, one row.
  auto table = run_moat({"stats", "busy"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.substr(0, table.out.find('\n')),
            "SANDBOX                 CPU %  MEM USAGE / LIMIT         MEM %   PIDS  NET RX / TX");
  EXPECT_EQ(table.out.find("\nbusy "), table.out.find('\n')) << table.out;
  EXPECT_EQ(run_moat({"rm", "-f", "busy"}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
