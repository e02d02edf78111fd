// DNS messages (RFC 1035, AAAA from RFC 3596) as the sandbox's resolver
// sees them: queries from the guest, answers it builds, and responses from
// the upstream resolver it reads addresses out of.
//
// Both peers are untrusted. The guest's queries are taken only in the plain
// form resolvers send (one question, opcode QUERY, no answer or authority
// records, at most one additional record for EDNS) and names without
// compression; the upstream's responses may compress names, so pointers
// must point strictly backwards (no loops) and every length is checked
// against the message. Nothing is read past the bytes given.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "net/ip_address.h"
#include "util/result.h"

namespace moat::net {

inline constexpr std::uint16_t kDnsTypeA = 1;
inline constexpr std::uint16_t kDnsTypeCname = 5;
inline constexpr std::uint16_t kDnsTypeAaaa = 28;
inline constexpr std::uint16_t kDnsClassIn = 1;

inline constexpr std::uint8_t kDnsRcodeNoError = 0;
inline constexpr std::uint8_t kDnsRcodeServFail = 2;
inline constexpr std::uint8_t kDnsRcodeNxDomain = 3;
inline constexpr std::uint8_t kDnsRcodeNotImp = 4;
inline constexpr std::uint8_t kDnsRcodeRefused = 5;

// The most a message may be (over TCP; UDP ones are smaller).
inline constexpr std::size_t kMaxDnsMessage = 65535;
// A name on the wire is at most 255 bytes, a label at most 63.
inline constexpr std::size_t kMaxDnsName = 255;

struct DnsQuery {
  std::uint16_t id = 0;
  bool recursion_desired = false;
  std::string name;  // lower case, no trailing dot ("" for the root)
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
};

// A guest's query. EINVAL (with what is wrong) for anything else; the
// caller answers FORMERR or drops it.
Result<DnsQuery> parse_dns_query(std::span<const std::uint8_t> message);

// The answer to `query`: `addresses` of the query's type (A: the IPv4 ones,
// AAAA: the IPv6 ones) with `ttl`; none of its type gives an empty NOERROR
// answer (the name exists, without such a record).
std::vector<std::uint8_t> build_dns_answer(const DnsQuery& query, const std::vector<IpAddress>& addresses,
                                           std::uint32_t ttl);
// An answer without records: NXDOMAIN, SERVFAIL, REFUSED, NOTIMP.
std::vector<std::uint8_t> build_dns_error(const DnsQuery& query, std::uint8_t rcode);

// What an upstream response says about `query`'s name.
struct DnsAnswer {
  std::uint8_t rcode = 0;
  std::vector<IpAddress> addresses;  // A/AAAA records of the name or of its CNAME chain
  std::vector<std::string> aliases;  // the CNAME chain followed, in order
  std::uint32_t ttl = 0;             // the smallest TTL of the records used
};

// Reads the response to `query` (same id and question, QR set). Records of
// other names than the question's and its CNAME chain are ignored.
Result<DnsAnswer> parse_dns_response(std::span<const std::uint8_t> message, const DnsQuery& query);

// The query for `name` and `type` as a resolver sends it (RD set).
std::vector<std::uint8_t> build_dns_query(std::uint16_t id, const std::string& name, std::uint16_t type);

}  // namespace moat::net
