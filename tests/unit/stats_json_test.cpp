// The `stats` reply's JSON (src/shim_contract/stats_json.h): every counter
// survives the trip, a missing one reads 0, and what a hostile or broken
// shim could send instead (negative, fractional, text, a long source) is
// refused with the field's name.
#include "shim_contract/stats_json.h"

#include <gtest/gtest.h>

namespace moat::shim {
namespace {

TEST(StatsJson, EveryCounterRoundTrips) {
  SandboxStats s;
  s.source = "cgroup v1";
  s.cpu_ns = 1;
  s.memory_bytes = 2;
  s.memory_limit_bytes = 3;
  s.pids = 4;
  s.pids_limit = 5;
  s.oom_kills = 6;
  s.net_tx_bytes = 7;
  s.net_rx_bytes = 8;
  s.net_tx_packets = 9;
  s.net_rx_packets = 10;
  s.net_connections = 3;
  s.host_rss_bytes = 11;
  s.disk_bytes = 12;
  s.disk_size_bytes = 13;
  s.guest_memory_total_bytes = 14;
  s.guest_memory_used_bytes = 15;
  s.execs = 16;
  s.uptime_ms = 0xffffffffffffffffull;
  auto back = stats_from_json(stats_to_json(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->source, "cgroup v1");
  EXPECT_EQ(back->cpu_ns, 1u);
  EXPECT_EQ(back->memory_bytes, 2u);
  EXPECT_EQ(back->memory_limit_bytes, 3u);
  EXPECT_EQ(back->pids, 4u);
  EXPECT_EQ(back->pids_limit, 5u);
  EXPECT_EQ(back->oom_kills, 6u);
  EXPECT_EQ(back->net_tx_bytes, 7u);
  EXPECT_EQ(back->net_rx_bytes, 8u);
  EXPECT_EQ(back->net_tx_packets, 9u);
  EXPECT_EQ(back->net_rx_packets, 10u);
  EXPECT_EQ(back->net_connections, 3u);
  EXPECT_EQ(back->host_rss_bytes, 11u);
  EXPECT_EQ(back->disk_bytes, 12u);
  EXPECT_EQ(back->disk_size_bytes, 13u);
  EXPECT_EQ(back->guest_memory_total_bytes, 14u);
  EXPECT_EQ(back->guest_memory_used_bytes, 15u);
  EXPECT_EQ(back->execs, 16u);
  EXPECT_EQ(back->uptime_ms, 0xffffffffffffffffull);
  EXPECT_EQ(back->sampled_ns, 0u) << "the reader stamps it";
}

TEST(StatsJson, MissingCountersReadZero) {
  auto s = stats_from_json(nlohmann::json::object());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->source, "");
  EXPECT_EQ(s->memory_bytes, 0u);
}

TEST(StatsJson, WrongTypesAreRefusedByName) {
  auto refused = [](nlohmann::json j) {
    auto s = stats_from_json(j);
    return s ? std::string("accepted") : s.error().message;
  };
  EXPECT_EQ(refused({{"memory_bytes", -1}}), "stats: memory_bytes is not a count");
  EXPECT_EQ(refused({{"pids", 1.5}}), "stats: pids is not a count");
  EXPECT_EQ(refused({{"cpu_ns", "12"}}), "stats: cpu_ns is not a count");
  EXPECT_EQ(refused({{"source", std::string(33, 'x')}}), "stats: source is not a short string");
  EXPECT_EQ(refused({{"source", 1}}), "stats: source is not a short string");
  EXPECT_EQ(refused(nlohmann::json::array()), "stats: not an object");
}

}  // namespace
}  // namespace moat::shim
