#include "net/dns_message.h"

#include <algorithm>
#include <cerrno>
#include <optional>

#include "net/policy.h"

namespace moat::net {
namespace {

constexpr std::size_t kHeaderBytes = 12;
constexpr std::uint16_t kDnsTypeOpt = 41;
constexpr std::uint16_t kFlagResponse = 0x8000;
constexpr std::uint16_t kFlagTruncated = 0x0200;
constexpr std::uint16_t kFlagRecursionDesired = 0x0100;
constexpr std::uint16_t kFlagRecursionAvailable = 0x0080;
// How many records of an upstream answer are looked at, and how long a
// CNAME chain may be followed.
constexpr std::uint16_t kMaxAnswerRecords = 256;
constexpr int kMaxAliases = 8;
constexpr int kMaxPointerHops = 64;

Error dns_error(const std::string& why) { return make_error("dns: " + why, EINVAL); }

// Bounds-checked reads from a message.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> m) : m_(m) {}
  std::size_t pos() const { return pos_; }
  void seek(std::size_t p) { pos_ = p; }
  std::size_t left() const { return m_.size() - pos_; }
  std::span<const std::uint8_t> message() const { return m_; }

  std::optional<std::uint8_t> u8() {
    if (left() < 1) return std::nullopt;
    return m_[pos_++];
  }
  std::optional<std::uint16_t> u16() {
    if (left() < 2) return std::nullopt;
    auto v = static_cast<std::uint16_t>(m_[pos_] << 8 | m_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::optional<std::uint32_t> u32() {
    auto hi = u16();
    auto lo = u16();
    if (!hi || !lo) return std::nullopt;
    return static_cast<std::uint32_t>(*hi) << 16 | *lo;
  }
  bool skip(std::size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  std::span<const std::uint8_t> m_;
  std::size_t pos_ = 0;
};

bool is_name_byte(std::uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

void append_label(std::string& name, std::span<const std::uint8_t> label) {
  if (!name.empty()) name += '.';
  for (std::uint8_t c : label) name += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

// A name without compression (a guest's question), host-name bytes only.
Result<std::string> read_plain_name(Reader& r) {
  std::string name;
  std::size_t wire = 0;
  while (true) {
    auto len = r.u8();
    if (!len) return dns_error("name runs past the message");
    wire += 1 + *len;
    if (wire > kMaxDnsName) return dns_error("name longer than 255 bytes");
    if (*len == 0) return name;
    if (*len > 63) return dns_error("compressed or oversized label in a question");
    std::size_t at = r.pos();
    if (!r.skip(*len)) return dns_error("label runs past the message");
    auto label = r.message().subspan(at, *len);
    if (!std::all_of(label.begin(), label.end(), is_name_byte)) return dns_error("label is not a host name");
    append_label(name, label);
  }
}

// A name that may be compressed (an upstream's response). Each pointer must
// point before the label that holds it, so a chain always ends. Leaves `r`
// after the name as it appears in place.
Result<std::string> read_name(Reader& r) {
  auto m = r.message();
  std::string name;
  std::size_t wire = 0;
  std::size_t at = r.pos();
  std::optional<std::size_t> resume;
  for (int hops = 0;;) {
    if (at >= m.size()) return dns_error("name runs past the message");
    std::uint8_t len = m[at];
    if ((len & 0xc0) == 0xc0) {
      if (at + 1 >= m.size()) return dns_error("pointer runs past the message");
      std::size_t target = static_cast<std::size_t>(len & 0x3f) << 8 | m[at + 1];
      if (target >= at || ++hops > kMaxPointerHops) return dns_error("name pointer does not point backwards");
      if (!resume) resume = at + 2;
      at = target;
      continue;
    }
    if (len > 63) return dns_error("bad label length");
    wire += 1 + len;
    if (wire > kMaxDnsName) return dns_error("name longer than 255 bytes");
    if (len == 0) {
      r.seek(resume ? *resume : at + 1);
      return name;
    }
    if (at + 1 + len > m.size()) return dns_error("label runs past the message");
    append_label(name, m.subspan(at + 1, len));
    at += 1 + len;
  }
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
  put_u16(out, static_cast<std::uint16_t>(v));
}

void put_name(std::vector<std::uint8_t>& out, const std::string& name) {
  std::size_t start = 0;
  while (start < name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
               name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
}

std::vector<std::uint8_t> response_head(const DnsQuery& q, std::uint8_t rcode, std::uint16_t answers) {
  std::vector<std::uint8_t> out;
  put_u16(out, q.id);
  std::uint16_t flags = kFlagResponse | kFlagRecursionAvailable | (rcode & 0x0f);
  if (q.recursion_desired) flags |= kFlagRecursionDesired;
  put_u16(out, flags);
  put_u16(out, 1);
  put_u16(out, answers);
  put_u16(out, 0);
  put_u16(out, 0);
  put_name(out, q.name);
  put_u16(out, q.type);
  put_u16(out, q.klass);
  return out;
}

struct Record {
  std::string name;
  std::uint16_t type;
  std::uint16_t klass;
  std::uint32_t ttl;
  std::size_t rdata;  // offset in the message
  std::uint16_t rdlength;
};

Result<Record> read_record(Reader& r) {
  Record rec;
  MOAT_ASSIGN_OR_RETURN(rec.name, read_name(r));
  auto type = r.u16();
  auto klass = r.u16();
  auto ttl = r.u32();
  auto rdlength = r.u16();
  if (!type || !klass || !ttl || !rdlength) return dns_error("record runs past the message");
  rec.type = *type;
  rec.klass = *klass;
  // A TTL with the top bit set is taken as 0 (RFC 2181 §8).
  rec.ttl = *ttl > 0x7fffffff ? 0 : *ttl;
  rec.rdata = r.pos();
  rec.rdlength = *rdlength;
  if (!r.skip(*rdlength)) return dns_error("record data runs past the message");
  return rec;
}

}  // namespace

Result<DnsQuery> parse_dns_query(std::span<const std::uint8_t> message) {
  if (message.size() < kHeaderBytes) return dns_error("shorter than a header");
  if (message.size() > kMaxDnsMessage) return dns_error("longer than 65535 bytes");
  Reader r(message);
  DnsQuery q;
  q.id = *r.u16();
  std::uint16_t flags = *r.u16();
  std::uint16_t qd = *r.u16(), an = *r.u16(), ns = *r.u16(), ar = *r.u16();
  if (flags & kFlagResponse) return dns_error("a response, not a query");
  if ((flags >> 11 & 0x0f) != 0) return dns_error("opcode is not QUERY");
  if (qd != 1 || an != 0 || ns != 0 || ar > 1) return dns_error("not one question alone");
  q.recursion_desired = flags & kFlagRecursionDesired;
  MOAT_ASSIGN_OR_RETURN(q.name, read_plain_name(r));
  auto type = r.u16();
  auto klass = r.u16();
  if (!type || !klass) return dns_error("question runs past the message");
  q.type = *type;
  q.klass = *klass;
  if (ar == 1) {
    // Only EDNS's OPT: the root name, type 41, class and TTL (6 bytes), data.
    auto root = r.u8();
    auto type_opt = r.u16();
    if (!root || *root != 0 || !type_opt || *type_opt != kDnsTypeOpt || !r.skip(6))
      return dns_error("an additional record other than EDNS");
    auto rdlength = r.u16();
    if (!rdlength || !r.skip(*rdlength)) return dns_error("EDNS record runs past the message");
  }
  if (r.left() != 0) return dns_error("bytes after the question");
  return q;
}

std::vector<std::uint8_t> build_dns_answer(const DnsQuery& query, const std::vector<IpAddress>& addresses,
                                           std::uint32_t ttl) {
  std::vector<const IpAddress*> matching;
  for (const auto& a : addresses) {
    if ((query.type == kDnsTypeA && a.is_v4()) || (query.type == kDnsTypeAaaa && !a.is_v4())) matching.push_back(&a);
  }
  auto out = response_head(query, kDnsRcodeNoError, static_cast<std::uint16_t>(matching.size()));
  for (const IpAddress* a : matching) {
    put_u16(out, 0xc000 | kHeaderBytes);  // the question's name
    put_u16(out, query.type);
    put_u16(out, kDnsClassIn);
    put_u32(out, ttl);
    put_u16(out, static_cast<std::uint16_t>(a->size()));
    out.insert(out.end(), a->bytes.begin(), a->bytes.begin() + static_cast<std::ptrdiff_t>(a->size()));
  }
  return out;
}

std::vector<std::uint8_t> build_dns_error(const DnsQuery& query, std::uint8_t rcode) {
  return response_head(query, rcode, 0);
}

std::vector<std::uint8_t> build_dns_query(std::uint16_t id, const std::string& name, std::uint16_t type) {
  std::vector<std::uint8_t> out;
  put_u16(out, id);
  put_u16(out, kFlagRecursionDesired);
  put_u16(out, 1);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, 0);
  put_name(out, normalize_name(name));
  put_u16(out, type);
  put_u16(out, kDnsClassIn);
  return out;
}

Result<DnsAnswer> parse_dns_response(std::span<const std::uint8_t> message, const DnsQuery& query) {
  if (message.size() < kHeaderBytes) return dns_error("shorter than a header");
  if (message.size() > kMaxDnsMessage) return dns_error("longer than 65535 bytes");
  Reader r(message);
  std::uint16_t id = *r.u16();
  std::uint16_t flags = *r.u16();
  std::uint16_t qd = *r.u16(), an = *r.u16();
  r.skip(4);
  if (id != query.id) return dns_error("answer to another query");
  if (!(flags & kFlagResponse) || (flags >> 11 & 0x0f) != 0) return dns_error("not a response to a query");
  if (flags & kFlagTruncated) return make_error("dns: truncated answer", EMSGSIZE);
  if (qd != 1) return dns_error("not one question");
  MOAT_ASSIGN_OR_RETURN(std::string qname, read_name(r));
  auto qtype = r.u16();
  auto qclass = r.u16();
  if (!qtype || !qclass) return dns_error("question runs past the message");
  if (qname != query.name || *qtype != query.type || *qclass != query.klass)
    return dns_error("answer to another question");

  DnsAnswer answer;
  answer.rcode = static_cast<std::uint8_t>(flags & 0x0f);
  std::vector<Record> records;
  for (std::uint16_t i = 0; i < std::min<std::uint16_t>(an, kMaxAnswerRecords); ++i) {
    MOAT_ASSIGN_OR_RETURN(auto rec, read_record(r));
    if (rec.klass == kDnsClassIn) records.push_back(std::move(rec));
  }
  // Follow the chain from the question's name: its addresses, or its CNAME.
  std::string current = query.name;
  std::optional<std::uint32_t> ttl;
  for (int step = 0; step <= kMaxAliases; ++step) {
    std::optional<std::string> next;
    for (const Record& rec : records) {
      if (rec.name != current) continue;
      bool is_a = rec.type == kDnsTypeA && rec.rdlength == 4;
      bool is_aaaa = rec.type == kDnsTypeAaaa && rec.rdlength == 16;
      if (rec.type == query.type && (is_a || is_aaaa)) {
        IpAddress a;
        a.family = rec.rdlength == 4 ? IpAddress::Family::kV4 : IpAddress::Family::kV6;
        std::copy_n(message.begin() + static_cast<std::ptrdiff_t>(rec.rdata), rec.rdlength, a.bytes.begin());
        answer.addresses.push_back(a);
        ttl = std::min(ttl.value_or(rec.ttl), rec.ttl);
      } else if (rec.type == kDnsTypeCname && !next) {
        Reader target(message);
        target.seek(rec.rdata);
        MOAT_ASSIGN_OR_RETURN(std::string alias, read_name(target));
        if (target.pos() != rec.rdata + rec.rdlength) return dns_error("CNAME data is not one name");
        next = std::move(alias);
        ttl = std::min(ttl.value_or(rec.ttl), rec.ttl);
      }
    }
    if (!answer.addresses.empty() || !next) break;
    if (std::find(answer.aliases.begin(), answer.aliases.end(), *next) != answer.aliases.end() || *next == query.name)
      return dns_error("CNAME loop");
    if (step == kMaxAliases) return dns_error("CNAME chain longer than 8");
    answer.aliases.push_back(*next);
    current = *next;
  }
  answer.ttl = ttl.value_or(0);
  return answer;
}

}  // namespace moat::net
