// DNS messages (src/net/dns_message.h): guests' queries taken only in their
// plain form, answers built byte for byte, upstream responses read with
// compression, CNAME chains, and every hostile shape refused.
#include "net/dns_message.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace moat::net {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes query_bytes(std::uint16_t id, const std::string& name, std::uint16_t type) {
  return build_dns_query(id, name, type);
}

DnsQuery query(const std::string& name, std::uint16_t type, std::uint16_t id = 0x1234) {
  auto q = parse_dns_query(query_bytes(id, name, type));
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message);
  return q.ok() ? *q : DnsQuery{};
}

void expect_bad_query(const Bytes& m, const std::string& why) {
  auto q = parse_dns_query(m);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, EINVAL);
  EXPECT_EQ(q.error().message, "dns: " + why);
}

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

TEST(NetDnsMessage, AQueryAsResolversSendIt) {
  Bytes m = query_bytes(0xbeef, "Files.PyPI.org.", kDnsTypeAaaa);
  EXPECT_EQ(m, (Bytes{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'f', 'i', 'l', 'e', 's', 4, 'p', 'y', 'p',
                      'i', 3, 'o', 'r', 'g', 0, 0, 28, 0, 1}));
  auto q = parse_dns_query(m);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->id, 0xbeef);
  EXPECT_TRUE(q->recursion_desired);
  EXPECT_EQ(q->name, "files.pypi.org");
  EXPECT_EQ(q->type, kDnsTypeAaaa);
  EXPECT_EQ(q->klass, kDnsClassIn);
  // With an EDNS OPT record (as glibc and dig add).
  Bytes edns = m;
  edns[11] = 1;
  edns.insert(edns.end(), {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0});
  EXPECT_TRUE(parse_dns_query(edns).ok());
}

TEST(NetDnsMessage, QueriesInAnyOtherShapeAreRefused) {
  Bytes good = query_bytes(1, "a.example", kDnsTypeA);
  expect_bad_query(Bytes(good.begin(), good.begin() + 11), "shorter than a header");
  Bytes response = good;
  response[2] |= 0x80;
  expect_bad_query(response, "a response, not a query");
  Bytes notify = good;
  notify[2] |= 4 << 3;
  expect_bad_query(notify, "opcode is not QUERY");
  Bytes two = good;
  two[5] = 2;
  expect_bad_query(two, "not one question alone");
  Bytes truncated(good.begin(), good.end() - 3);
  expect_bad_query(truncated, "question runs past the message");
  Bytes trailing = good;
  trailing.push_back(0);
  expect_bad_query(trailing, "bytes after the question");
  Bytes compressed = good;
  compressed[12] = 0xc0;
  expect_bad_query(compressed, "compressed or oversized label in a question");
  Bytes odd = good;
  odd[13] = '*';
  expect_bad_query(odd, "label is not a host name");
  Bytes longname = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 5; ++i) {
    longname.push_back(63);
    longname.insert(longname.end(), 63, 'a');
  }
  longname.insert(longname.end(), {0, 0, 1, 0, 1});
  expect_bad_query(longname, "name longer than 255 bytes");
  Bytes other_additional = good;
  other_additional[11] = 1;
  other_additional.insert(other_additional.end(), {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0});
  expect_bad_query(other_additional, "an additional record other than EDNS");
}

TEST(NetDnsMessage, AnswersAreBuiltByteForByte) {
  DnsQuery q = query("a.example", kDnsTypeA, 0x0102);
  Bytes a = build_dns_answer(q, {ip("93.184.216.34"), ip("2001:db8::1"), ip("10.0.0.1")}, 60);
  Bytes head = {0x01, 0x02, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0, 1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1};
  Bytes rr1 = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34};
  Bytes rr2 = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1};
  Bytes want = head;
  want.insert(want.end(), rr1.begin(), rr1.end());
  want.insert(want.end(), rr2.begin(), rr2.end());
  EXPECT_EQ(a, want);
  Bytes nx = build_dns_error(q, kDnsRcodeNxDomain);
  Bytes nx_want = head;
  nx_want[3] = 0x83;
  nx_want[7] = 0;
  EXPECT_EQ(nx, nx_want);
  // Our own answers read back as the upstream's would.
  auto back = parse_dns_response(a, q);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->rcode, kDnsRcodeNoError);
  ASSERT_EQ(back->addresses.size(), 2u);
  EXPECT_EQ(back->addresses[0], ip("93.184.216.34"));
  EXPECT_EQ(back->ttl, 60u);
  auto nx_back = parse_dns_response(nx, q);
  ASSERT_TRUE(nx_back.ok());
  EXPECT_EQ(nx_back->rcode, kDnsRcodeNxDomain);
  EXPECT_TRUE(nx_back->addresses.empty());
}

// An upstream answer: www.example -> cdn.example (CNAME, compressed) ->
// two AAAA records, plus a record for an unrelated name that must not count.
Bytes upstream_answer(std::uint16_t id) {
  Bytes m = {static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id), 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 0};
  // question at 12: www.example AAAA IN
  Bytes qn = {3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 28, 0, 1};
  m.insert(m.end(), qn.begin(), qn.end());
  // unrelated.example AAAA ::1 (named in full)
  Bytes unrelated = {9, 'u', 'n', 'r', 'e', 'l', 'a', 't', 'e', 'd', 0xc0, 16, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16};
  m.insert(m.end(), unrelated.begin(), unrelated.end());
  Bytes one(16, 0);
  one[15] = 1;
  m.insert(m.end(), one.begin(), one.end());
  // www.example CNAME cdn.example (pointer to the question's name; target "cdn" + pointer to "example")
  Bytes cname = {0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0, 0, 6, 3, 'c', 'd', 'n', 0xc0, 16};
  std::size_t cdn_at = m.size() + 12;
  m.insert(m.end(), cname.begin(), cname.end());
  for (std::uint8_t last : {1, 2}) {
    Bytes rr = {0xc0, static_cast<std::uint8_t>(cdn_at), 0, 28, 0, 1, 0, 0, 0, 30, 0, 16};
    Bytes addr = {0x26, 0x06, 0x47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
    m.insert(m.end(), rr.begin(), rr.end());
    m.insert(m.end(), addr.begin(), addr.end());
  }
  return m;
}

TEST(NetDnsMessage, UpstreamAnswersFollowTheirCnameChain) {
  DnsQuery q = query("www.example", kDnsTypeAaaa, 0x4242);
  auto a = parse_dns_response(upstream_answer(0x4242), q);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->aliases, std::vector<std::string>{"cdn.example"});
  ASSERT_EQ(a->addresses.size(), 2u);
  EXPECT_EQ(a->addresses[0], ip("2606:4700::1"));
  EXPECT_EQ(a->addresses[1], ip("2606:4700::2"));
  EXPECT_EQ(a->ttl, 30u);
  auto other_id = parse_dns_response(upstream_answer(0x4243), q);
  ASSERT_FALSE(other_id.ok());
  EXPECT_EQ(other_id.error().message, "dns: answer to another query");
  auto other_question = parse_dns_response(upstream_answer(0x4242), query("www.example", kDnsTypeA, 0x4242));
  ASSERT_FALSE(other_question.ok());
  EXPECT_EQ(other_question.error().message, "dns: answer to another question");
}

TEST(NetDnsMessage, HostileResponsesAreRefused) {
  DnsQuery q = query("www.example", kDnsTypeAaaa, 0x4242);
  Bytes good = upstream_answer(0x4242);
  // A pointer to itself, and one pointing forwards.
  Bytes loop = good;
  loop[12] = 0xc0;
  loop[13] = 12;
  EXPECT_EQ(parse_dns_response(loop, q).error().message, "dns: name pointer does not point backwards");
  Bytes forward = good;
  forward[12] = 0xc0;
  forward[13] = 40;
  EXPECT_EQ(parse_dns_response(forward, q).error().message, "dns: name pointer does not point backwards");
  // Record data past the end.
  Bytes cut(good.begin(), good.end() - 5);
  EXPECT_EQ(parse_dns_response(cut, q).error().message, "dns: record data runs past the message");
  // A truncated answer is a distinct error: ask again over TCP.
  Bytes tc = good;
  tc[2] |= 0x02;
  auto t = parse_dns_response(tc, q);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, EMSGSIZE);
  // A CNAME loop: www.example -> www.example.
  DnsQuery qa = query("a.example", kDnsTypeA, 7);
  Bytes self = {0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
                0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 9, 0, 2, 0xc0, 12};
  EXPECT_EQ(parse_dns_response(self, qa).error().message, "dns: CNAME loop");
}

}  // namespace
}  // namespace moat::net
