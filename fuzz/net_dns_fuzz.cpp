// DNS messages from arbitrary bytes, both directions: as a guest's query
// (which, when taken, must round-trip through an answer built for it) and
// as an upstream's response to a fixed question (compression pointers,
// CNAME chains, record bounds). Nothing may crash, loop or read past the
// input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "net/dns_message.h"

using namespace moat::net;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> bytes(data, size);
  if (auto q = parse_dns_query(bytes); q.ok()) {
    const std::vector<IpAddress> addresses = {IpAddress::v4(93, 184, 216, 34), *IpAddress::parse("2606:4700::1")};
    auto answer = build_dns_answer(*q, addresses, 60);
    auto back = parse_dns_response(answer, *q);
    // Our own answer to a query of type A or AAAA reads back with its record.
    if ((q->type == kDnsTypeA || q->type == kDnsTypeAaaa) && q->klass == kDnsClassIn &&
        (!back.ok() || back->addresses.size() != 1))
      std::abort();
    auto error = build_dns_error(*q, kDnsRcodeNxDomain);
    auto nx = parse_dns_response(error, *q);
    if (!nx.ok() || nx->rcode != kDnsRcodeNxDomain || !nx->addresses.empty()) std::abort();
  }
  if (size >= 2) {
    DnsQuery q;
    q.id = static_cast<std::uint16_t>(data[0] << 8 | data[1]);
    q.name = "www.example";
    q.type = kDnsTypeAaaa;
    q.klass = kDnsClassIn;
    (void)parse_dns_response(bytes, q);
  }
  return 0;
}
