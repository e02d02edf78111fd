// The port watch behind --publish-listening: what the agent reads from
// /proc/net/tcp{,6} (src/agent/listening_ports.h) and the two messages
// (src/proto/port_watch.h), whose `listening` report the shim must not trust.
#include <gtest/gtest.h>

#include "agent/listening_ports.h"
#include "proto/port_watch.h"

namespace moat {
namespace {

using proto::Json;
using proto::PortSet;

// Lines as a 6.1 kernel prints them (trailing fields shortened).
constexpr const char* kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1\n"
    "   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1\n"
    "   2: 0F02000A:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1\n"
    "   3: 0F02000A:1F90 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 1004 1\n"
    "   4: 0100FE7F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1005 1\n"
    "   5: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1006 1\n";

constexpr const char* kTcp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue\n"
    "   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    "   1: 00000000000000000000000001000000:1388 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    "   2: 0000000000000000FFFF00000100007F:1389 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    "   3: 0000000000000000FFFF00000F02000A:138A 00000000000000000000000000000000:0000 0A 00000000:00000000\n"
    "   4: 000080FE00000000FF00000000000000:138B 00000000000000000000000000000000:0000 0A 00000000:00000000\n";

TEST(ListeningPorts, ListeningSocketsOffTheLoopbackCount) {
  // 8080 on 0.0.0.0 (twice: SO_REUSEPORT), 22 on 10.0.2.15; not 3306 on
  // 127.0.0.1, 80 on 127.254.0.1, nor the connection on 8080.
  EXPECT_EQ(agent::parse_listening_ports(kTcp), (PortSet{22, 8080}));
  // 443 on ::, 5002 on ::ffff:10.0.2.15, 5003 on fe80::ff; not ::1 or
  // ::ffff:127.0.0.1.
  EXPECT_EQ(agent::parse_listening_ports(kTcp6), (PortSet{443, 5002, 5003}));
}

TEST(ListeningPorts, MalformedLinesAreSkipped) {
  EXPECT_EQ(agent::parse_listening_ports(""), PortSet{});
  EXPECT_EQ(agent::parse_listening_ports("   0 00000000:1F90 00000000:0000 0A"), PortSet{}) << "no slot colon";
  EXPECT_EQ(agent::parse_listening_ports("   0: 00000000:0000 00000000:0000 0A"), PortSet{}) << "port 0";
  EXPECT_EQ(agent::parse_listening_ports("   0: 00000000:11F90 00000000:0000 0A"), PortSet{}) << "5 digits";
  EXPECT_EQ(agent::parse_listening_ports("   0: 0000000:1F90 00000000:0000 0A"), PortSet{}) << "7 digits";
  EXPECT_EQ(agent::parse_listening_ports("   0: 0000000G:1F90 00000000:0000 0A"), PortSet{}) << "not hex";
  EXPECT_EQ(agent::parse_listening_ports("   0: 00000000:1F90 00000000:0000 0A\n   1: 00000000:1F91"),
            PortSet{8080})
      << "a cut line after a whole one";
}

TEST(PortWatch, MessagesRoundTrip) {
  auto watch = proto::make_watch_ports(1000);
  EXPECT_EQ(watch.type, proto::msg::kWatchPorts);
  EXPECT_EQ(watch.stream, proto::kControlStream);
  auto ms = proto::parse_watch_ports(watch.payload);
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  EXPECT_EQ(*ms, 1000u);
  auto stop = proto::parse_watch_ports(proto::make_watch_ports(0).payload);
  ASSERT_TRUE(stop.ok());
  EXPECT_EQ(*stop, 0u);

  auto report = proto::make_listening(PortSet{80, 8080, 22});
  EXPECT_EQ(report.payload, (Json{{"tcp", {22, 80, 8080}}}));
  auto back = proto::parse_listening(report.payload);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, (PortSet{22, 80, 8080}));
  auto none = proto::parse_listening(proto::make_listening({}).payload);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(PortWatch, AHostileReportIsRefusedWhole) {
  auto refused = [](const Json& payload) {
    auto r = proto::parse_listening(payload);
    return r.ok() ? std::string("accepted") : r.error().message;
  };
  EXPECT_EQ(refused(Json::array()), "listening: the payload is not a map");
  EXPECT_EQ(refused(Json::object()), "listening: \"tcp\" is missing or not a list");
  EXPECT_EQ(refused(Json{{"tcp", 80}}), "listening: \"tcp\" is missing or not a list");
  EXPECT_EQ(refused(Json{{"tcp", {80, "81"}}}), "listening: a port is not an integer");
  EXPECT_EQ(refused(Json{{"tcp", {80, 1.5}}}), "listening: a port is not an integer");
  EXPECT_EQ(refused(Json{{"tcp", {80, -1}}}), "listening: port -1 is not 1 to 65535");
  EXPECT_EQ(refused(Json{{"tcp", {~0ull}}}), "listening: port 18446744073709551615 is not 1 to 65535");
  EXPECT_EQ(refused(Json{{"tcp", {0}}}), "listening: port 0 is not 1 to 65535");
  EXPECT_EQ(refused(Json{{"tcp", {65536}}}), "listening: port 65536 is not 1 to 65535");
  EXPECT_EQ(refused(Json{{"tcp", {80, 80}}}), "listening: port 80 is listed twice");
  Json many = Json::array();
  for (int p = 1; p <= static_cast<int>(proto::kMaxListeningPorts) + 1; ++p) many.push_back(p);
  EXPECT_EQ(refused(Json{{"tcp", many}}), "listening: 1025 ports (at most 1024)");
  many.erase(many.end() - 1);
  EXPECT_EQ(refused(Json{{"tcp", many}}), "accepted");
}

TEST(PortWatch, OnlyTheLowestPortsAreSentWhenThereAreTooMany) {
  PortSet all;
  for (int p = 1; p <= 2000; ++p) all.insert(static_cast<std::uint16_t>(p));
  auto report = proto::make_listening(all);
  ASSERT_EQ(report.payload["tcp"].size(), proto::kMaxListeningPorts);
  EXPECT_EQ(report.payload["tcp"].back(), proto::kMaxListeningPorts);
  EXPECT_TRUE(proto::parse_listening(report.payload).ok());
}

TEST(PortWatch, IntervalsOutsideTheBoundsAreRefused) {
  auto refused = [](const Json& payload) {
    auto r = proto::parse_watch_ports(payload);
    return r.ok() ? std::string("accepted") : r.error().message;
  };
  // Unsigned, as CBOR decodes a positive integer.
  EXPECT_EQ(refused(Json{{"interval_ms", 99u}}), "watch_ports: interval_ms 99 is below 100");
  EXPECT_EQ(refused(Json{{"interval_ms", 100u}}), "accepted");
  EXPECT_EQ(refused(Json{{"interval_ms", 60000u}}), "accepted");
  EXPECT_NE(refused(Json{{"interval_ms", 60001u}}), "accepted");
  EXPECT_NE(refused(Json::object()), "accepted");
}

}  // namespace
}  // namespace moat
