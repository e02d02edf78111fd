// Ethernet frames from arbitrary bytes, as a guest sends them. Nothing may
// crash, loop or read past the input, and every span of a parsed frame lies
// inside it. What parses must be answerable: a TCP segment's reset and any
// IP packet's port unreachable are built, and each reads back from the
// packet's destination to its source with checksums that verify.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <span>

#include "net/packet.h"

using namespace moat::net;

namespace {

bool inside(std::span<const std::uint8_t> s, std::span<const std::uint8_t> frame) {
  return s.empty() || (s.data() >= frame.data() && s.data() + s.size() <= frame.data() + frame.size());
}

// The answers carry no IP options or IPv6 extension headers: the upper
// layer starts right after the fixed header.
std::span<const std::uint8_t> l4_of(const FrameView& v) { return v.ip_packet.subspan(v.l3 == L3::kIpv4 ? 20 : 40); }

bool checksums_verify(const FrameView& v) {
  auto l4 = l4_of(v);
  std::uint32_t sum = 0;
  if (v.l3 == L3::kIpv4 && internet_checksum(v.ip_packet.first(20)) != 0) return false;
  if (v.l4 != L4::kIcmp) {
    sum = v.ip_protocol + static_cast<std::uint32_t>(l4.size());
    for (const IpAddress* a : {&v.src, &v.dst})
      for (std::size_t i = 0; i < a->size(); i += 2)
        sum += static_cast<std::uint32_t>(a->bytes[i] << 8 | a->bytes[i + 1]);
  }
  return internet_checksum(l4, sum) == 0;
}

// `answer` parses, goes from `v`'s destination back to its source, and is
// of `l4` with good checksums.
const FrameView* check_answer(const moat::Result<FrameView>& answer, const FrameView& v, L4 l4) {
  if (!answer.ok()) std::abort();
  const FrameView& a = *answer;
  if (a.src_mac != v.dst_mac || a.dst_mac != v.src_mac || a.src != v.dst || a.dst != v.src) std::abort();
  if (a.l3 != v.l3 || a.l4 != l4 || a.fragment || !checksums_verify(a)) std::abort();
  return &a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> bytes(data, size);
  auto frame = parse_frame(bytes);
  if (!frame.ok()) return 0;
  const FrameView& v = *frame;
  if (!inside(v.ip_packet, bytes) || !inside(v.payload, bytes)) std::abort();
  if (v.l3 != L3::kIpv4 && v.l3 != L3::kIpv6) return 0;

  if (v.l4 == L4::kTcp) {
    auto reset = build_reset_reply(v);
    // A reset is never answered; anything else is.
    if ((v.tcp_flags & kTcpRst) != 0) {
      if (!reset.empty()) std::abort();
    } else {
      auto back = parse_frame(reset);
      const FrameView* r = check_answer(back, v, L4::kTcp);
      if (r->src_port != v.dst_port || r->dst_port != v.src_port || !(r->tcp_flags & kTcpRst) || !r->payload.empty())
        std::abort();
      if (!build_reset_reply(*r).empty()) std::abort();
    }
  }

  auto unreachable = build_port_unreachable(v);
  if (unreachable.size() > kEthernetHeader + 1280) std::abort();
  auto back = parse_frame(unreachable);
  check_answer(back, v, v.l3 == L3::kIpv4 ? L4::kIcmp : L4::kIcmpv6);
  return 0;
}
