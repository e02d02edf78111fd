#include "oci_runtime/network_namespace.h"

#include <fcntl.h>
#include <sched.h>

#include <sstream>
#include <vector>

#include "util/unique_fd.h"

namespace moat::oci {
namespace {

// resolv.conf's lines, split into "nameserver" ones and the rest.
bool is_nameserver_line(std::string_view line, std::string* address) {
  std::istringstream in{std::string(line)};
  std::string key, value;
  if (!(in >> key) || key != "nameserver" || !(in >> value)) return false;
  if (address) *address = value;
  return true;
}

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
  for (auto line : lines_of(resolv_conf)) {
    std::string address;
    if (is_nameserver_line(line, &address)) return address;
  }
  return "";
}

std::string with_guest_nameservers(std::string_view engine_resolv_conf, std::string_view guest_resolv_conf) {
  std::string out;
  for (auto line : lines_of(guest_resolv_conf)) {
    if (is_nameserver_line(line, nullptr)) out.append(line).push_back('\n');
  }
  for (auto line : lines_of(engine_resolv_conf)) {
    if (!is_nameserver_line(line, nullptr)) out.append(line).push_back('\n');
  }
  return out;
}

}  // namespace moat::oci
