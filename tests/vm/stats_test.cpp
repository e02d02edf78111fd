// `moat stats` (include/moat/stats.h): the counters of a running sandbox
// come from its own group and match its limits; a busy guest shows as one
// busy CPU and no more (its --cpus quota); the guest's packets, memory,
// disk and commands are counted; a sandbox that is not running is an
// error; without --no-stream a sample comes every second until the sandbox
// stops.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;

Json stats_of(const std::string& name) {
  auto o = run_moat({"stats", "--no-stream", "--json", name});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  Json all = Json::parse(o.out, nullptr, false);
  EXPECT_TRUE(all.is_array() && all.size() == 1) << o.out;
  return all.is_array() && all.size() == 1 ? all[0] : Json::object();
}

TEST(VmStats, CountersComeFromTheSandboxesGroupAndHoldItsLimits) {
  auto created = run_moat({"create", "--name", "busy", "--memory", "256", "--cpus", "1", "--rootfs-dir",
                           busybox_rootfs()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto not_running = run_moat({"stats", "--no-stream", "busy"});
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
  EXPECT_EQ(idle["net_connections"], 0u) << idle.dump();
  EXPECT_GT(idle["memory_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_LT(idle["memory_bytes"].get<std::uint64_t>(), idle["memory_limit_bytes"].get<std::uint64_t>());
  EXPECT_GE(idle["pids"].get<std::uint64_t>(), 2u) << "QEMU's main thread and its vCPU at least";
  EXPECT_EQ(idle["oom_kills"], 0u);
  EXPECT_GT(idle["uptime_ms"].get<std::uint64_t>(), 0u);
  // The guest's own view: its kernel has nearly all of the 256 MiB.
  EXPECT_GT(idle["guest_memory_total_bytes"].get<std::uint64_t>(), 200ull << 20) << idle.dump();
  EXPECT_LE(idle["guest_memory_total_bytes"].get<std::uint64_t>(), 256ull << 20) << idle.dump();
  EXPECT_GT(idle["guest_memory_used_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_GT(idle["host_rss_bytes"].get<std::uint64_t>(), 10ull << 20) << "QEMU and the shim, resident";
  EXPECT_GT(idle["disk_size_bytes"].get<std::uint64_t>(), 0u) << "the writable disk";
  EXPECT_LT(idle["disk_bytes"].get<std::uint64_t>(), idle["disk_size_bytes"].get<std::uint64_t>()) << "sparse";

  // 64 MiB in the guest's tmpfs is guest memory used; 32 MiB written to
  // its root and synced is the writable disk's blocks on the host; each
  // command counts once.
  std::uint64_t execs = idle["execs"].get<std::uint64_t>();
  ASSERT_EQ(run_moat({"exec", "busy", "--", "sh", "-c",
                      "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null && "
                      "dd if=/dev/urandom of=/filled bs=1M count=32 2>/dev/null && sync"})
                .exit_code,
            0);
  Json filled = stats_of("busy");
  EXPECT_EQ(filled["execs"].get<std::uint64_t>(), execs + 1) << filled.dump();
  EXPECT_GE(filled["guest_memory_used_bytes"].get<std::uint64_t>(),
            idle["guest_memory_used_bytes"].get<std::uint64_t>() + (60ull << 20))
      << idle.dump() << "\n" << filled.dump();
  EXPECT_GE(filled["disk_bytes"].get<std::uint64_t>(), idle["disk_bytes"].get<std::uint64_t>() + (30ull << 20))
      << idle.dump() << "\n" << filled.dump();
  ASSERT_EQ(run_moat({"exec", "busy", "--", "rm", "/dev/shm/fill"}).exit_code, 0);

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
  auto table = run_moat({"stats", "--no-stream", "busy"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.substr(0, table.out.find('\n')),
            "SANDBOX                 CPU %  MEM USAGE / LIMIT         MEM %  GUEST MEM USED / TOTAL "
            "DISK USED / SIZE     HOST RSS   PIDS  EXECS  NET RX / TX");
  EXPECT_EQ(table.out.find("\nbusy "), table.out.find('\n')) << table.out;
  EXPECT_EQ(table.out.find('\n', table.out.find('\n') + 1), table.out.size() - 1) << "one row: " << table.out;

  // Streamed: one JSON array per line, a second apart, until the sandbox
  // stops; then the error, and the exit code of a failed command.
  auto streamed = spawn_moat({"stats", "--format", "json", "busy"});
  std::string lines = read_until(streamed.out_fd, "\n", 30);
  lines += read_until(streamed.out_fd, "\n", 30);
  EXPECT_EQ(run_moat({"stop", "busy"}).exit_code, 0);
  auto ended = finish(streamed, 60);
  lines += ended.out;
  EXPECT_EQ(ended.exit_code, 125) << ended.err;
  EXPECT_NE(ended.err.find("sandbox busy is not running"), std::string::npos) << ended.err;
  std::size_t samples = 0;
  for (std::size_t at = 0; at < lines.size();) {
    std::size_t end = lines.find('\n', at);
    ASSERT_NE(end, std::string::npos) << lines;
    Json sample = Json::parse(lines.substr(at, end - at), nullptr, false);
    EXPECT_TRUE(sample.is_array() && sample.size() == 1 && sample[0]["sandbox"] == "busy") << lines;
    ++samples;
    at = end + 1;
  }
  EXPECT_GE(samples, 2u) << lines;
  EXPECT_EQ(run_moat({"rm", "-f", "busy"}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
