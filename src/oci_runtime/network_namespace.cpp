#include "oci_runtime/network_namespace.h"

#include <fcntl.h>
#include <sched.h>

#include <vector>

#include "moat/network.h"
#include "util/resolv_conf.h"
#include "util/unique_fd.h"

namespace moat::oci {
namespace {

// A "nameserver" line, as resolv_conf_nameservers reads them.
bool is_nameserver_line(std::string_view line) { return !resolv_conf_nameservers(line).empty(); }

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return out;
}

}  // namespace

Status join_network_namespace(const std::string& path) {
  UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return errno_error("the container's network namespace " + path);
  if (::setns(ns.get(), CLONE_NEWNET) != 0) return errno_error("joining the network namespace " + path);
  return ok_status();
}

Status enter_new_network_namespace() {
  if (::unshare(CLONE_NEWNET) != 0) return errno_error("a new network namespace for the container");
  return ok_status();
}

std::string first_nameserver(std::string_view resolv_conf) {
  for (std::string_view value : resolv_conf_nameservers(resolv_conf)) {
    // The first the sandbox's resolver can use (not, say, fe80::1%eth0).
    NetworkOptions probe;
    probe.dns = std::string(value);
    if (validate_network(probe)) return probe.dns;
  }
  return "";
}

std::string with_guest_nameservers(std::string_view engine_resolv_conf, std::string_view guest_resolv_conf) {
  std::string out;
  for (auto line : lines_of(guest_resolv_conf)) {
    if (is_nameserver_line(line)) out.append(line).push_back('\n');
  }
  for (auto line : lines_of(engine_resolv_conf)) {
    if (!is_nameserver_line(line)) out.append(line).push_back('\n');
  }
  return out;
}

}  // namespace moat::oci
