// The host's TSC rate given to TCG guests (vm/host_tsc.h): the per-boot
// cache file's format, and a measurement on this host.
#include <gtest/gtest.h>

#include "vm/host_tsc.h"

namespace moat::vm {
namespace {

constexpr char kBoot[] = "6f1c2a3e-0d4b-4c1e-9a7f-2b3c4d5e6f70";

TEST(HostTsc, CacheTextRoundTripsForItsBootOnly) {
  std::string text = tsc_cache_text(kBoot, 2096028);
  EXPECT_EQ(text, std::string(kBoot) + " 2096028\n");
  EXPECT_EQ(tsc_from_cache_text(text, kBoot), 2096028u);
  EXPECT_EQ(tsc_from_cache_text(text, "00000000-0d4b-4c1e-9a7f-2b3c4d5e6f70"), std::nullopt) << "another boot";
  EXPECT_EQ(tsc_from_cache_text(text, ""), std::nullopt);
}

TEST(HostTsc, MalformedOrImplausibleCacheTextIsIgnored) {
  const std::string b = kBoot;
  for (const std::string& bad : {b, b + " ", b + " \n", b + " 2096028", b + "  2096028\n", b + " +2096028\n",
                                 b + " 2096028x\n", b + " 2096028\n\n", b + "2096028\n", b + " 99999\n",
                                 b + " 20000001\n", b + " 99999999999999999999999\n", b + " -1\n", std::string()})
    EXPECT_EQ(tsc_from_cache_text(bad, kBoot), std::nullopt) << "'" << bad << "'";
  EXPECT_EQ(tsc_from_cache_text(b + " 100000\n", kBoot), 100000u);
  EXPECT_EQ(tsc_from_cache_text(b + " 20000000\n", kBoot), 20000000u);
}

TEST(HostTsc, ThisHostsRateIsKnownAndStable) {
  // The test machines are x86-64 with a constant, non-stop TSC.
  std::uint32_t khz = host_tsc_khz();
  EXPECT_TRUE(plausible_tsc_khz(khz)) << khz;
  EXPECT_EQ(host_tsc_khz(), khz) << "measured once per process";
}

}  // namespace
}  // namespace moat::vm
