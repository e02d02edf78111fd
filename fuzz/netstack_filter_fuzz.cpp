// The network filter on any sequence of guest frames (and frames of the
// stack's answers, interleaved), under a policy that allows one public
// address on one port and the host on another. The input is a list of
// records: a byte saying where the frame comes from (or that the policy
// changes), a 2-byte length, the frame. Whatever the guest sends, nothing
// may crash, and no frame that would open a flow may reach the stack unless
// the policy allows its destination.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "net/network_settings.h"
#include "net/packet.h"
#include "netstack/network_filter.h"

using namespace moat;

namespace {

const net::IpAddress kAllowed = net::IpAddress::v4(93, 184, 216, 34);
const net::IpAddress kGateway = net::IpAddress::v4(10, 0, 2, 2);

// Could this frame, reaching the stack, make it open a host socket the
// policy (`open` or closed: nothing) does not allow? Replies from the
// published UDP port to whoever sent to it are not the policy's to judge.
void check_opening(std::span<const std::uint8_t> frame, bool open) {
  auto f = net::parse_frame(frame);
  if (!f.ok()) std::abort();  // the filter passes only frames it parsed
  if (f->l3 == net::L3::kArp) return;
  if (f->fragment) std::abort();
  bool opening_tcp = f->l4 == net::L4::kTcp && (f->tcp_flags & net::kTcpSyn) && !(f->tcp_flags & net::kTcpAck);
  bool udp = f->l4 == net::L4::kUdp;
  if (!opening_tcp && !udp) return;
  if (udp && f->src_port == 5353) return;
  // An intercepted connection's SYN goes to its listener (30000 + a byte).
  bool ok = open && ((f->dst == kAllowed && f->dst_port == 80) || (f->dst == kGateway && f->dst_port == 8080) ||
                     (f->dst == kGateway && f->dst_port >= 30000 && f->dst_port < 30256));
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  NetworkOptions open;
  open.mode = NetworkMode::kNone;
  open.rules = {{true, "93.184.216.34:80"}, {true, "@host:8080"}};
  NetworkOptions closed;
  closed.mode = NetworkMode::kNone;
  auto policy = *net::read_policy(open.mode, open.rules);
  std::unique_ptr<netstack::NetworkFilter> filter;
  netstack::Resolver resolver(
      policy.get(), {{"db.test", {kGateway}}}, std::nullopt,
      [&](netstack::Resolver::ReplyTag tag, std::vector<std::uint8_t> m) { filter->answer_dns(tag, std::move(m)); },
      nullptr);
  bool is_open = true;
  std::vector<std::string> intercepts;
  filter = std::make_unique<netstack::NetworkFilter>(
      netstack::NetworkFilter::Sinks{[&](netstack::NetworkFilter::Frame f) {
                                       check_opening(f, is_open);
                                     },
                                     [](std::vector<std::uint8_t> f) {
                                       if (!f.empty() && !net::parse_frame(f).ok()) std::abort();
                                     },
                                     nullptr,
                                     // Connections to port 80 are taken for
                                     // interception; the input decides their way.
                                     [&](const netstack::NetworkFilter::InterceptRequest& r) {
                                       if (r.remote.port != 80) return false;
                                       intercepts.push_back(r.key);
                                       return true;
                                     }},
      policy, resolver, 8, std::set<std::uint16_t>{5353});
  std::size_t at = 0;
  while (size - at >= 3) {
    std::uint8_t kind = data[at];
    std::size_t len = static_cast<std::size_t>(data[at + 1]) << 8 | data[at + 2];
    at += 3;
    len = std::min(len, size - at);
    std::span<const std::uint8_t> frame(data + at, len);
    at += len;
    switch (kind % 4) {
      case 0:
      case 1: filter->from_guest(frame); break;
      case 2: {
        std::vector<std::uint8_t> copy(frame.begin(), frame.end());
        filter->from_stack(copy);
        break;
      }
      case 3:
        if (!intercepts.empty() && len > 0) {
          // The oldest held connection's way: ready (to a listener port the
          // input picks) or failed.
          std::string key = intercepts.front();
          intercepts.erase(intercepts.begin());
          if (frame[0] & 1)
            filter->intercept_ready(key, net::Endpoint{kGateway, static_cast<std::uint16_t>(30000 + frame[0])});
          else
            filter->intercept_failed(key, ECONNREFUSED);
          break;
        }
        is_open = !is_open;
        filter->set_policy(*net::read_policy(is_open ? open.mode : closed.mode, is_open ? open.rules : closed.rules));
        break;
    }
  }
  return 0;
}
