#include "netstack/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/network_settings.h"
#include "proto/guest_network.h"
#include "util/resolv_conf.h"

namespace moat::netstack {

std::optional<UpstreamResolver> upstream_from_resolv_conf(std::string_view text) {
  for (std::string_view value : resolv_conf_nameservers(text)) {
    // A zone (fe80::1%eth0) names an interface of the host: not usable here.
    if (auto a = net::IpAddress::parse(value)) return UpstreamResolver{*a, 53};
  }
  return std::nullopt;
}

Resolver::Resolver(const net::Policy* policy, std::vector<std::pair<std::string, std::vector<net::IpAddress>>> hosts,
                   std::optional<UpstreamResolver> upstream, Answer answer, Log log)
    : policy_(policy), upstream_addr_(upstream), answer_(std::move(answer)), log_(std::move(log)) {
  static_.emplace_back(proto::kHostAlias, net::host_gateway_names_addresses());
  for (auto& [name, addresses] : hosts) static_.emplace_back(net::normalize_name(name), std::move(addresses));
}

const std::vector<net::IpAddress>* Resolver::static_addresses(const std::string& name) const {
  // The last --add-host of a name wins, as in /etc/hosts order of docker.
  for (auto it = static_.rbegin(); it != static_.rend(); ++it)
    if (it->first == name) return &it->second;
  return nullptr;
}

bool Resolver::on_query(std::span<const std::uint8_t> message, ReplyTag tag) {
  auto q = net::parse_dns_query(message);
  if (!q) return false;  // not a question: nothing a resolver would answer
  if (q->klass != net::kDnsClassIn) {
    answer_(tag, net::build_dns_error(*q, net::kDnsRcodeNotImp));
    return true;
  }
  net::Verdict v = policy_->decide_name(q->name);
  if (!v.allowed) {
    if (log_) log_("dns: " + q->name + " denied (" + v.reason + ")");
    answer_(tag, net::build_dns_error(*q, net::kDnsRcodeNxDomain));
    return true;
  }
  if (const auto* fixed = static_addresses(q->name)) {
    answer_(tag, net::build_dns_answer(*q, *fixed, kMaxAnswerTtl));
    return true;
  }
  if (q->type != net::kDnsTypeA && q->type != net::kDnsTypeAaaa) {
    answer_(tag, net::build_dns_answer(*q, {}, kMaxAnswerTtl));
    return true;
  }
  forward(*q, tag);
  return true;
}

void Resolver::forward(const net::DnsQuery& q, ReplyTag tag) {
  if (!upstream_addr_) {
    answer_(tag, net::build_dns_error(q, net::kDnsRcodeServFail));
    return;
  }
  if (pending_.size() >= kMaxPending) {
    answer_(tag, net::build_dns_error(q, net::kDnsRcodeServFail));
    return;
  }
  if (!upstream_) {
    if (auto opened = open_upstream(); !opened) {
      if (log_) log_("dns: " + opened.error().message);
      answer_(tag, net::build_dns_error(q, net::kDnsRcodeServFail));
      return;
    }
  }
  Pending p;
  p.guest_query = q;
  p.upstream_query = q;
  p.upstream_query.id = fresh_id();
  p.tag = tag;
  p.deadline = Clock::now() + kUpstreamTimeout;
  auto wire = net::build_dns_query(p.upstream_query.id, q.name, q.type);
  if (::send(upstream_.get(), wire.data(), wire.size(), MSG_DONTWAIT) < 0) {
    answer_(tag, net::build_dns_error(q, net::kDnsRcodeServFail));
    return;
  }
  pending_.emplace(p.upstream_query.id, std::move(p));
}

Status Resolver::open_upstream() {
  sockaddr_storage sa;
  socklen_t len = net::to_sockaddr(*upstream_addr_, sa);
  UniqueFd fd(::socket(sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("upstream resolver socket");
  // Connected: the kernel drops datagrams from any other address.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
    return errno_error("upstream resolver " + upstream_addr_->address.to_string());
  upstream_ = std::move(fd);
  return ok_status();
}

std::uint16_t Resolver::fresh_id() {
  // Random ids, so that nothing off the path can guess one to answer.
  for (int tries = 0; tries < 64; ++tries) {
    std::uint16_t id = 0;
    if (::getrandom(&id, sizeof id, 0) != sizeof id) id = static_cast<std::uint16_t>(++id_state_ * 40503u);
    if (!pending_.count(id)) return id;
  }
  while (pending_.count(static_cast<std::uint16_t>(++id_state_))) {
  }
  return static_cast<std::uint16_t>(id_state_);
}

void Resolver::on_upstream_readable() {
  std::uint8_t buf[net::kMaxDnsMessage];
  for (int i = 0; i < 64; ++i) {
    ssize_t n = ::recv(upstream_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) return;
    if (n < 2) continue;
    std::uint16_t id = static_cast<std::uint16_t>(buf[0] << 8 | buf[1]);
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;  // late, or not ours
    auto answer = net::parse_dns_response({buf, static_cast<std::size_t>(n)}, it->second.upstream_query);
    if (!answer) {
      // A truncated answer is not retried over TCP: A and AAAA answers
      // that need more than 512 bytes are rare; the guest sees SERVFAIL.
      answer_(it->second.tag, net::build_dns_error(it->second.guest_query, net::kDnsRcodeServFail));
    } else {
      answer_from_upstream(it->second, *answer);
    }
    pending_.erase(it);
  }
}

void Resolver::answer_from_upstream(Pending& p, const net::DnsAnswer& answer) {
  const net::DnsQuery& q = p.guest_query;
  if (answer.rcode != net::kDnsRcodeNoError) {
    answer_(p.tag, net::build_dns_error(q, answer.rcode == net::kDnsRcodeNxDomain ? net::kDnsRcodeNxDomain
                                                                                   : net::kDnsRcodeServFail));
    return;
  }
  // An alias the policy denies makes the whole answer denied: the
  // connection would be judged by the alias's name too.
  for (const auto& alias : answer.aliases) {
    if (net::Verdict v = policy_->decide_name(alias); !v.allowed) {
      if (log_) log_("dns: " + q.name + " denied through its alias " + alias + " (" + v.reason + ")");
      answer_(p.tag, net::build_dns_error(q, net::kDnsRcodeNxDomain));
      return;
    }
  }
  std::vector<net::IpAddress> kept;
  for (const auto& a : answer.addresses) {
    if (policy_->answer_allowed(q.name, a)) {
      kept.push_back(a);
    } else if (log_) {
      log_("dns: dropped " + a.to_string() + " from the answer for " + q.name +
           " (a public name may not resolve to a non-public address without a rule)");
    }
  }
  if (kept.empty() && !answer.addresses.empty()) {
    answer_(p.tag, net::build_dns_error(q, net::kDnsRcodeNxDomain));
    return;
  }
  std::uint32_t ttl = std::min(answer.ttl, kMaxAnswerTtl);
  auto expires = Clock::now() + std::max<std::chrono::seconds>(kMinPinLife, std::chrono::seconds(2 * ttl));
  for (const auto& a : kept) {
    pin(q.name, a, expires);
    for (const auto& alias : answer.aliases) pin(alias, a, expires);
  }
  answer_(p.tag, net::build_dns_answer(q, kept, ttl));
}

void Resolver::pin(const std::string& name, const net::IpAddress& address, Clock::time_point expires) {
  std::string key = key_of(address);
  auto [lo, hi] = pins_by_address_.equal_range(key);
  for (auto it = lo; it != hi; ++it) {
    if (it->second->name == name) {
      // Refreshed: moves to the young end.
      it->second->expires = std::max(it->second->expires, expires);
      pins_.splice(pins_.end(), pins_, it->second);
      return;
    }
  }
  while (pins_.size() >= kMaxPins) {
    std::string old = key_of(pins_.front().address);
    auto [a, b] = pins_by_address_.equal_range(old);
    for (auto it = a; it != b; ++it) {
      if (it->second == pins_.begin()) {
        pins_by_address_.erase(it);
        break;
      }
    }
    pins_.pop_front();
  }
  pins_.push_back(Pin{name, address, expires});
  pins_by_address_.emplace(std::move(key), std::prev(pins_.end()));
}

void Resolver::expire(Clock::time_point now) {
  // Called at every wake-up of the network thread: the walks below run
  // only when something is due.
  if (auto due = next_deadline(); !due || *due > now) return;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline <= now) {
      answer_(it->second.tag, net::build_dns_error(it->second.guest_query, net::kDnsRcodeServFail));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  if (now < next_pin_sweep_) return;
  next_pin_sweep_ = now + kPinSweep;
  for (auto it = pins_.begin(); it != pins_.end();) {
    if (it->expires > now) {
      ++it;
      continue;
    }
    auto [a, b] = pins_by_address_.equal_range(key_of(it->address));
    for (auto m = a; m != b; ++m) {
      if (m->second == it) {
        pins_by_address_.erase(m);
        break;
      }
    }
    it = pins_.erase(it);
  }
}

std::optional<Resolver::Clock::time_point> Resolver::next_deadline() const {
  std::optional<Clock::time_point> due;
  for (const auto& [id, p] : pending_)
    if (!due || p.deadline < *due) due = p.deadline;
  // Pins are forgotten lazily, a minute apart at most.
  if (!pins_.empty() && (!due || next_pin_sweep_ < *due)) due = next_pin_sweep_;
  return due;
}

std::vector<std::string> Resolver::names_for(const net::IpAddress& address) const {
  std::vector<std::string> names;
  for (const auto& [name, addresses] : static_)
    if (std::find(addresses.begin(), addresses.end(), address) != addresses.end()) names.push_back(name);
  auto now = Clock::now();
  auto [lo, hi] = pins_by_address_.equal_range(key_of(address));
  for (auto it = lo; it != hi; ++it)
    if (it->second->expires > now) names.push_back(it->second->name);
  return names;
}

}  // namespace moat::netstack
