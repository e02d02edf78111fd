#include "agent/network_setup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "proto/guest_network.h"
#include "util/unique_fd.h"

namespace moat::agent {
namespace {

constexpr std::uint32_t kDumpSeq = 1;
constexpr std::uint32_t kFirstRequestSeq = 2;
constexpr int kMaxRequests = 8;

NetworkFailure failure(const char* step, const char* object, int err) {
  NetworkFailure f;
  f.step = step;
  f.object = object;
  f.err = err;
  return f;
}

void copy_string(char* out, std::size_t cap, const char* in, std::size_t len) {
  if (len >= cap) len = cap - 1;
  std::memcpy(out, in, len);
  out[len] = '\0';
}

// ---- finding the link ------------------------------------------------------

struct Link {
  int index = 0;
  char name[IFNAMSIZ] = {};
};

// Replies to the link dump. Static, not on the setup child's small stack; a
// reply holds a few links of ~1.5 KiB each (statistics included).
alignas(nlmsghdr) char g_dump_reply[16 * 1024];

// Keeps the first Ethernet link of the dump: the VM's one network device,
// whatever index and name the kernel gave it.
void note_if_ethernet(nlmsghdr* h, Link& link) {
  auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(h));
  if (link.index != 0 || info->ifi_type != ARPHRD_ETHER || (info->ifi_flags & IFF_LOOPBACK)) return;
  int len = static_cast<int>(IFLA_PAYLOAD(h));
  for (rtattr* a = IFLA_RTA(info); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type != IFLA_IFNAME) continue;
    copy_string(link.name, sizeof(link.name), static_cast<const char*>(RTA_DATA(a)),
                ::strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
    link.index = info->ifi_index;
  }
}

NetworkFailure find_ethernet_link(int fd, Link& link) {
  struct {
    nlmsghdr header;
    ifinfomsg info;
  } request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = RTM_GETLINK;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = kDumpSeq;
  request.info.ifi_family = AF_UNSPEC;
  if (::send(fd, &request, sizeof(request), 0) < 0) return failure("list the network interfaces", "", errno);
  for (;;) {
    // MSG_TRUNC: the length of the whole reply, so one too big is noticed.
    ssize_t n = ::recv(fd, g_dump_reply, sizeof(g_dump_reply), MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failure("list the network interfaces", "", errno);
    if (static_cast<std::size_t>(n) > sizeof(g_dump_reply))
      return failure("list the network interfaces", "", EMSGSIZE);
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(g_dump_reply); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != kDumpSeq) continue;
      if (h->nlmsg_type == NLMSG_ERROR)
        return failure("list the network interfaces", "", -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error);
      if (h->nlmsg_type == RTM_NEWLINK) note_if_ethernet(h, link);
      if (h->nlmsg_type == NLMSG_DONE)
        return link.index != 0 ? NetworkFailure{} : failure("find an Ethernet interface", "", ENODEV);
    }
  }
}

// ---- IPv6 settings ---------------------------------------------------------

NetworkFailure write_zero(const char* path, const char* knob) {
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), "0", 1) != 1) return failure("write 0 to the IPv6 setting", knob, errno);
  return NetworkFailure{};
}

// Set before the link comes up, when they decide what happens as it does: no
// router advertisement may add addresses or routes besides ours, and no
// address waits for duplicate address detection (the shim is the link's
// only other end), so none is ever "tentative" when commands start.
NetworkFailure turn_off_ipv6_autoconfiguration(const char* ifname) {
  static constexpr const char* kKnobs[] = {"accept_ra", "autoconf", "accept_dad", "dad_transmits"};
  for (const char* knob : kKnobs) {
    char path[64] = "/proc/sys/net/ipv6/conf/";
    std::strncat(path, ifname, sizeof(path) - std::strlen(path) - 1);
    std::strncat(path, "/", sizeof(path) - std::strlen(path) - 1);
    std::strncat(path, knob, sizeof(path) - std::strlen(path) - 1);
    if (auto f = write_zero(path, knob); f.failed()) return f;
  }
  return NetworkFailure{};
}

// ---- the requests ----------------------------------------------------------

// Requests laid out one after another in one buffer and sent in one write:
// the kernel carries them out in order and acknowledges each (NLM_F_ACK),
// one failed or not, so the replies say which one failed and why.
class RequestBatch {
 public:
  // Starts a request with its fixed part; step and object name it in a failure.
  void begin(std::uint16_t type, std::uint16_t flags, const void* fixed, std::size_t fixed_len, const char* step,
             const char* object) {
    std::size_t len = NLMSG_LENGTH(fixed_len);
    current_ = nullptr;
    if (count_ == kMaxRequests || used_ + NLMSG_ALIGN(len) > sizeof(buf_)) {
      overflowed_ = true;
      return;
    }
    current_ = reinterpret_cast<nlmsghdr*>(buf_ + used_);
    current_->nlmsg_len = static_cast<std::uint32_t>(len);
    current_->nlmsg_type = type;
    current_->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    current_->nlmsg_seq = kFirstRequestSeq + static_cast<std::uint32_t>(count_);
    std::memcpy(NLMSG_DATA(current_), fixed, fixed_len);
    steps_[count_] = step;
    objects_[count_] = object;
    ++count_;
    used_ += NLMSG_ALIGN(len);
  }

  // Appends an attribute to the request begun last.
  void attribute(std::uint16_t type, const void* data, std::size_t len) {
    if (current_ == nullptr) return;
    if (used_ + RTA_SPACE(len) > sizeof(buf_)) {
      overflowed_ = true;
      return;
    }
    auto* a = reinterpret_cast<rtattr*>(buf_ + used_);
    a->rta_type = type;
    a->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(a), data, len);
    used_ += RTA_SPACE(len);
    current_->nlmsg_len = static_cast<std::uint32_t>(buf_ + used_ - reinterpret_cast<char*>(current_));
  }

  bool overflowed() const { return overflowed_; }
  int count() const { return count_; }
  const char* data() const { return buf_; }
  std::size_t size() const { return used_; }
  // The request a reply answers, by its sequence number; -1 if none.
  int index_of(std::uint32_t seq) const {
    std::uint32_t i = seq - kFirstRequestSeq;
    return seq >= kFirstRequestSeq && i < static_cast<std::uint32_t>(count_) ? static_cast<int>(i) : -1;
  }
  const char* step(int i) const { return steps_[i]; }
  const char* object(int i) const { return objects_[i]; }

 private:
  alignas(nlmsghdr) char buf_[512] = {};
  std::size_t used_ = 0;
  nlmsghdr* current_ = nullptr;
  int count_ = 0;
  bool overflowed_ = false;
  const char* steps_[kMaxRequests] = {};
  const char* objects_[kMaxRequests] = {};
};

struct Addresses {
  in_addr guest4{}, gateway4{};
  in6_addr guest6{}, gateway6{};
};

bool parse_addresses(Addresses& a) {
  return ::inet_pton(AF_INET, proto::kGuestIpv4, &a.guest4) == 1 &&
         ::inet_pton(AF_INET, proto::kGatewayIpv4, &a.gateway4) == 1 &&
         ::inet_pton(AF_INET6, proto::kGuestIpv6, &a.guest6) == 1 &&
         ::inet_pton(AF_INET6, proto::kGatewayIpv6, &a.gateway6) == 1;
}

void add_address(RequestBatch& batch, int index, int family, const void* address, std::size_t len, int prefix,
                 const char* text) {
  ifaddrmsg m{};
  m.ifa_family = static_cast<std::uint8_t>(family);
  m.ifa_prefixlen = static_cast<std::uint8_t>(prefix);
  // Usable at once: there is no duplicate to detect on a link to the shim.
  m.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
  m.ifa_scope = RT_SCOPE_UNIVERSE;
  m.ifa_index = static_cast<std::uint32_t>(index);
  batch.begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &m, sizeof(m), "add the address", text);
  batch.attribute(IFA_LOCAL, address, len);
  batch.attribute(IFA_ADDRESS, address, len);
}

// One request: the kernel applies the MTU before the flags, so the link
// comes up with it.
void set_mtu_and_up(RequestBatch& batch, int index) {
  ifinfomsg m{};
  m.ifi_family = AF_UNSPEC;
  m.ifi_index = index;
  m.ifi_flags = IFF_UP;
  m.ifi_change = IFF_UP;
  batch.begin(RTM_SETLINK, 0, &m, sizeof(m), "set the MTU and bring the link up", "");
  std::uint32_t mtu = proto::kGuestMtu;
  batch.attribute(IFLA_MTU, &mtu, sizeof(mtu));
}

void add_default_route(RequestBatch& batch, int index, int family, const void* gateway, std::size_t len,
                       const char* text) {
  rtmsg m{};
  m.rtm_family = static_cast<std::uint8_t>(family);
  m.rtm_table = RT_TABLE_MAIN;
  m.rtm_protocol = RTPROT_BOOT;  // as `ip route add` marks a route it adds
  m.rtm_scope = RT_SCOPE_UNIVERSE;
  m.rtm_type = RTN_UNICAST;
  // On-link: the guest's address is a host address, so no prefix route
  // covers the gateway (proto/guest_network.h says why).
  m.rtm_flags = RTNH_F_ONLINK;
  batch.begin(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &m, sizeof(m), "add the default route via", text);
  batch.attribute(RTA_GATEWAY, gateway, len);
  auto oif = static_cast<std::uint32_t>(index);
  batch.attribute(RTA_OIF, &oif, sizeof(oif));
}

// ---- the acknowledgements --------------------------------------------------

// One datagram each; a failure's echoes its request and may add the kernel's
// explanation, well within this.
constexpr std::size_t kAckBytes = 512;
alignas(nlmsghdr) char g_acks[kMaxRequests][kAckBytes];

// The kernel's words on a failed request (NLMSGERR_ATTR_MSG, sent when the
// socket asked for NETLINK_EXT_ACK), e.g. "Nexthop has invalid gateway".
void copy_kernel_message(const nlmsghdr* h, std::size_t received, NetworkFailure& f) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  std::size_t payload = sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) payload += e->msg.nlmsg_len - NLMSG_HDRLEN;
  std::size_t offset = NLMSG_SPACE(payload);
  std::size_t end = h->nlmsg_len < received ? h->nlmsg_len : received;
  if (offset >= end) return;
  int len = static_cast<int>(end - offset);
  auto* a = reinterpret_cast<rtattr*>(const_cast<char*>(reinterpret_cast<const char*>(h)) + offset);
  for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type != NLMSGERR_ATTR_MSG) continue;
    auto* text = static_cast<const char*>(RTA_DATA(a));
    copy_string(f.kernel_message, sizeof(f.kernel_message), text, ::strnlen(text, RTA_PAYLOAD(a)));
  }
}

// Reads one acknowledgement per request, all queued by the time send()
// returned (the kernel handles rtnetlink requests in the sender's call), so
// one recvmmsg() usually takes them all. Returns the first request's failure.
NetworkFailure await_acks(int fd, const RequestBatch& batch) {
  mmsghdr messages[kMaxRequests] = {};
  iovec vectors[kMaxRequests];
  for (int i = 0; i < kMaxRequests; ++i) {
    vectors[i] = {g_acks[i], kAckBytes};
    messages[i].msg_hdr.msg_iov = &vectors[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  NetworkFailure first;
  int first_index = batch.count();
  for (int acked = 0; acked < batch.count();) {
    int n = ::recvmmsg(fd, messages, static_cast<unsigned>(batch.count() - acked), MSG_WAITFORONE, nullptr);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failure("read the kernel's replies", "", errno);
    for (int m = 0; m < n; ++m) {
      auto* h = reinterpret_cast<nlmsghdr*>(g_acks[m]);
      std::size_t received = messages[m].msg_len;
      if (received < NLMSG_LENGTH(sizeof(nlmsgerr)) || h->nlmsg_type != NLMSG_ERROR) continue;
      int i = batch.index_of(h->nlmsg_seq);
      if (i < 0) continue;
      ++acked;
      int error = static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      if (error == 0 || i > first_index) continue;
      first = failure(batch.step(i), batch.object(i), -error);
      first_index = i;
      copy_kernel_message(h, received, first);
    }
  }
  return first;
}

// Addresses before the link comes up, so it is never up without them; the
// routes after, as the kernel takes a gateway only on a link that is up.
NetworkFailure configure_link(int fd, int index) {
  Addresses a;
  if (!parse_addresses(a)) return failure("parse the guest's addresses", "", EINVAL);
  RequestBatch batch;
  add_address(batch, index, AF_INET, &a.guest4, sizeof(a.guest4), proto::kGuestIpv4HostPrefix, proto::kGuestIpv4);
  add_address(batch, index, AF_INET6, &a.guest6, sizeof(a.guest6), proto::kGuestIpv6HostPrefix, proto::kGuestIpv6);
  set_mtu_and_up(batch, index);
  add_default_route(batch, index, AF_INET, &a.gateway4, sizeof(a.gateway4), proto::kGatewayIpv4);
  add_default_route(batch, index, AF_INET6, &a.gateway6, sizeof(a.gateway6), proto::kGatewayIpv6);
  if (batch.overflowed()) return failure("build the requests", "", EMSGSIZE);
  if (::send(fd, batch.data(), batch.size(), 0) < 0) return failure("send the requests", "", errno);
  return await_acks(fd, batch);
}

}  // namespace

NetworkFailure configure_network() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return failure("open an rtnetlink socket", "", errno);
  // Only adds the kernel's explanation to a failure; none is fine too.
  int on = 1;
  ::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));
  Link link;
  NetworkFailure f = find_ethernet_link(fd.get(), link);
  if (!f.failed()) f = turn_off_ipv6_autoconfiguration(link.name);
  if (!f.failed()) f = configure_link(fd.get(), link.index);
  copy_string(f.interface, sizeof(f.interface), link.name, std::strlen(link.name));
  return f;
}

Error network_error(const NetworkFailure& f) {
  std::string where = f.interface[0] != '\0' ? std::string("network interface ") + f.interface : "network";
  std::string what = std::string(f.step ? f.step : "configure") + (f.object[0] != '\0' ? " " : "") + f.object;
  Error e = errno_error(where + ": " + what, f.err);
  if (f.kernel_message[0] != '\0') e.message += std::string(" (") + f.kernel_message + ")";
  return e;
}

}  // namespace moat::agent
