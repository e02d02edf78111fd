// The guest's memory numbers: read from /proc/meminfo by the agent
// (src/agent/guest_memory.h) and taken into the stats by the shim
// (src/shim/sandbox_stats.h), where they are the guest's word.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/guest_memory.h"
#include "shim/sandbox_stats.h"

namespace moat {
namespace {

TEST(GuestMemory, ParsesTotalAndAvailableInBytes) {
  auto m = agent::parse_meminfo(
      "MemTotal:         240412 kB\nMemFree:          200000 kB\nMemAvailable:     210000 kB\nBuffers: 1 kB\n");
  EXPECT_EQ(m.total_bytes, 240412ull * 1024);
  EXPECT_EQ(m.available_bytes, 210000ull * 1024);
}

TEST(GuestMemory, MissingOrMalformedLinesReadZero) {
  EXPECT_EQ(agent::parse_meminfo("").total_bytes, 0u);
  EXPECT_EQ(agent::parse_meminfo("MemTotal: 12x kB\n").total_bytes, 0u);
  EXPECT_EQ(agent::parse_meminfo("MemTotal: 99999999999999999999999 kB\n").total_bytes, 0u);
  EXPECT_EQ(agent::parse_meminfo("MemTotalX: 5 kB\nMemTotal: 7 kB").total_bytes, 7168u)
      << "a longer key is another line";
  EXPECT_EQ(agent::parse_meminfo("MemAvailable: 3 kB").available_bytes, 3072u);
}

TEST(GuestMemory, TheGuestsAnswerCannotClaimMoreUsedThanTotal) {
  SandboxStats s;
  shim::add_guest_memory(s, {{"mem_total_bytes", 1000}, {"mem_available_bytes", 400}});
  EXPECT_EQ(s.guest_memory_total_bytes, 1000u);
  EXPECT_EQ(s.guest_memory_used_bytes, 600u);
  shim::add_guest_memory(s, {{"mem_total_bytes", 10}, {"mem_available_bytes", 400}});
  EXPECT_EQ(s.guest_memory_used_bytes, 0u);
  SandboxStats t;
  shim::add_guest_memory(t, {{"mem_total_bytes", -5}, {"mem_available_bytes", "x"}});
  EXPECT_EQ(t.guest_memory_total_bytes, 0u);
  EXPECT_EQ(t.guest_memory_used_bytes, 0u);
  shim::add_guest_memory(t, nlohmann::json::array());
  EXPECT_EQ(t.guest_memory_total_bytes, 0u);
}

}  // namespace
}  // namespace moat
