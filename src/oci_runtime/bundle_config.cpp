#include "oci_runtime/bundle_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <set>

#include "util/json_object.h"
#include "util/read_file.h"

namespace moat::oci {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxArgs = 4096;
constexpr std::size_t kMaxEnv = 4096;
constexpr std::size_t kMaxMounts = 256;

Error bad(const std::string& field, const std::string& what) {
  return Error{EINVAL, "config.json: " + field + ": " + what};
}

Result<std::vector<std::string>> string_list(const json& j, const std::string& field, std::size_t max) {
  if (!j.is_array()) return bad(field, "expected an array of strings");
  if (j.size() > max) return bad(field, "more than " + std::to_string(max) + " entries");
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) return bad(field, "expected an array of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::string> string_field(const json& obj, const char* key, const std::string& field) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return bad(field, "expected a string");
  return it->get<std::string>();
}

Result<std::uint64_t> unsigned_field(const json& v, const std::string& field, std::uint64_t max) {
  if (!v.is_number_integer() && !v.is_number_unsigned()) return bad(field, "expected a whole number");
  if (v.is_number_integer() && v.get<std::int64_t>() < 0) return bad(field, "must not be negative");
  auto n = v.get<std::uint64_t>();
  if (n > max) return bad(field, "at most " + std::to_string(max));
  return n;
}

// "RLIMIT_NOFILE" -> "nofile", as ExecOptions::rlimits names them.
std::string rlimit_name(std::string type) {
  if (type.rfind("RLIMIT_", 0) == 0) type = type.substr(7);
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  return type;
}

Status read_user(const json& user, ProcessSpec& p, std::vector<std::string>& unsupported) {
  if (!user.is_object()) return bad("process.user", "expected an object");
  if (auto it = user.find("uid"); it != user.end()) {
    MOAT_ASSIGN_OR_RETURN(auto uid, unsigned_field(*it, "process.user.uid", UINT32_MAX - 1));
    p.uid = static_cast<std::uint32_t>(uid);
  }
  if (auto it = user.find("gid"); it != user.end()) {
    MOAT_ASSIGN_OR_RETURN(auto gid, unsigned_field(*it, "process.user.gid", UINT32_MAX - 1));
    p.gid = static_cast<std::uint32_t>(gid);
  }
  if (auto it = user.find("additionalGids"); it != user.end() && it->is_array() && !it->empty()) {
    // The guest's own group database decides supplementary groups.
    unsupported.push_back("process.user.additionalGids: the groups of the user in the image's /etc/group apply");
  }
  if (user.contains("umask")) unsupported.push_back("process.user.umask: the guest's default umask applies");
  return ok_status();
}

// capabilities(7)'s names by number, as <linux/capability.h> numbers them.
constexpr const char* kCapabilityNames[] = {
    "CAP_CHOWN",        "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH", "CAP_FOWNER",         "CAP_FSETID",
    "CAP_KILL",         "CAP_SETGID",         "CAP_SETUID",          "CAP_SETPCAP",        "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",    "CAP_NET_RAW",        "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",    "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",       "CAP_SYS_CHROOT",     "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",    "CAP_SYS_ADMIN",      "CAP_SYS_BOOT",        "CAP_SYS_NICE",       "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",     "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",           "CAP_LEASE",          "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP",       "CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",      "CAP_SYSLOG",
    "CAP_WAKE_ALARM",   "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",      "CAP_PERFMON",        "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

Result<std::uint64_t> capability_mask(const json& list, const std::string& field) {
  MOAT_ASSIGN_OR_RETURN(auto names, string_list(list, field, 64));
  std::uint64_t mask = 0;
  for (const auto& name : names) {
    auto* found = std::find(std::begin(kCapabilityNames), std::end(kCapabilityNames), name);
    if (found == std::end(kCapabilityNames)) return bad(field, "unknown capability \"" + name + "\"");
    mask |= 1ull << (found - std::begin(kCapabilityNames));
  }
  return mask;
}

Result<CapabilitySets> read_capabilities(const json& j) {
  if (!j.is_object()) return bad("process.capabilities", "expected an object");
  CapabilitySets c;
  auto set = [&](const char* key, std::uint64_t& out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return ok_status();
    MOAT_ASSIGN_OR_RETURN(out, capability_mask(*it, std::string("process.capabilities.") + key));
    return ok_status();
  };
  MOAT_TRY(set("bounding", c.bounding));
  MOAT_TRY(set("effective", c.effective));
  MOAT_TRY(set("permitted", c.permitted));
  MOAT_TRY(set("inheritable", c.inheritable));
  MOAT_TRY(set("ambient", c.ambient));
  return c;
}

Status read_rlimits(const json& list, ProcessSpec& p) {
  if (!list.is_array()) return bad("process.rlimits", "expected an array");
  for (const auto& r : list) {
    if (!r.is_object() || !r.contains("type") || !r["type"].is_string())
      return bad("process.rlimits", "each entry needs a type");
    // The runtime spec: a value that cannot be mapped to the kernel is an
    // error, not a limit silently left out (the guest's agent knows these).
    static const std::set<std::string> kKnown = {"as",      "core",   "cpu",  "data",   "fsize",
                                                 "locks",   "memlock", "msgqueue", "nice", "nofile",
                                                 "nproc",   "rss",    "rtprio", "sigpending", "stack"};
    std::string type = r["type"].get<std::string>();
    std::string name = rlimit_name(type);
    if (type.rfind("RLIMIT_", 0) != 0 || !kKnown.count(name))
      return bad("process.rlimits", "unknown type \"" + type + "\"");
    Rlimit lim;
    MOAT_ASSIGN_OR_RETURN(lim.soft, unsigned_field(r.value("soft", json(0)), "process.rlimits.soft", UINT64_MAX));
    MOAT_ASSIGN_OR_RETURN(lim.hard, unsigned_field(r.value("hard", json(0)), "process.rlimits.hard", UINT64_MAX));
    if (lim.soft > lim.hard) return bad("process.rlimits", type + ": the soft limit is above the hard one");
    p.rlimits[name] = lim;
  }
  return ok_status();
}

Result<ProcessSpec> process_from(const json& j, std::vector<std::string>& unsupported) {
  if (!j.is_object()) return bad("process", "expected an object");
  ProcessSpec p;
  if (auto it = j.find("args"); it != j.end()) {
    MOAT_ASSIGN_OR_RETURN(p.args, string_list(*it, "process.args", kMaxArgs));
  }
  if (p.args.empty()) return bad("process.args", "no command given");
  if (auto it = j.find("env"); it != j.end() && !it->is_null()) {
    MOAT_ASSIGN_OR_RETURN(p.env, string_list(*it, "process.env", kMaxEnv));
  }
  MOAT_ASSIGN_OR_RETURN(p.cwd, string_field(j, "cwd", "process.cwd"));
  if (p.cwd.empty()) p.cwd = "/";
  if (p.cwd[0] != '/') return bad("process.cwd", "must be an absolute path");
  if (auto it = j.find("user"); it != j.end()) MOAT_TRY(read_user(*it, p, unsupported));
  if (auto it = j.find("terminal"); it != j.end()) {
    if (!it->is_boolean()) return bad("process.terminal", "expected true or false");
    p.terminal = it->get<bool>();
  }
  if (auto it = j.find("consoleSize"); it != j.end() && it->is_object()) {
    MOAT_ASSIGN_OR_RETURN(auto h, unsigned_field(it->value("height", json(24)), "process.consoleSize.height", 65535));
    MOAT_ASSIGN_OR_RETURN(auto w, unsigned_field(it->value("width", json(80)), "process.consoleSize.width", 65535));
    if (h) p.rows = static_cast<std::uint16_t>(h);
    if (w) p.cols = static_cast<std::uint16_t>(w);
  }
  if (auto it = j.find("rlimits"); it != j.end() && !it->is_null()) MOAT_TRY(read_rlimits(*it, p));
  // The VM is the isolation boundary: the guest process runs as the user
  // given, with the guest kernel's defaults for the rest.
  if (auto it = j.find("capabilities"); it != j.end() && !it->is_null()) {
    MOAT_ASSIGN_OR_RETURN(p.capabilities, read_capabilities(*it));
  }
  if (auto it = j.find("noNewPrivileges"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return bad("process.noNewPrivileges", "expected true or false");
    p.no_new_privileges = it->get<bool>();
  }
  for (const char* key : {"apparmorProfile", "selinuxLabel", "oomScoreAdj", "ioPriority", "scheduler"}) {
    if (j.contains(key)) unsupported.push_back(std::string("process.") + key + ": not applied (the VM is the boundary)");
  }
  return p;
}

bool has_option(const std::vector<std::string>& options, const char* name) {
  return std::find(options.begin(), options.end(), name) != options.end();
}

// Mounts the guest makes itself, whatever the config says about them.
bool guest_made(const std::string& type, const std::string& destination) {
  static const std::set<std::string> types = {"proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"};
  static const std::set<std::string> tmpfs_at = {"/dev", "/dev/shm", "/run", "/tmp"};
  return types.count(type) || (type == "tmpfs" && tmpfs_at.count(destination));
}

std::uint64_t tmpfs_size(const std::vector<std::string>& options) {
  for (const auto& o : options) {
    if (o.rfind("size=", 0) != 0) continue;
    std::string v = o.substr(5);
    char* end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    std::uint64_t unit = 1;
    if (end && *end) {
      switch (*end) {
        case 'k': case 'K': unit = 1ull << 10; break;
        case 'm': case 'M': unit = 1ull << 20; break;
        case 'g': case 'G': unit = 1ull << 30; break;
        default: return 0;
      }
    }
    return n * unit;
  }
  return 0;
}

Status read_mounts(const json& list, BundleConfig& c) {
  if (!list.is_array()) return bad("mounts", "expected an array");
  if (list.size() > kMaxMounts) return bad("mounts", "more than " + std::to_string(kMaxMounts));
  for (const auto& m : list) {
    if (!m.is_object()) return bad("mounts", "each entry must be an object");
    MOAT_ASSIGN_OR_RETURN(auto destination, string_field(m, "destination", "mounts.destination"));
    MOAT_ASSIGN_OR_RETURN(auto type, string_field(m, "type", "mounts.type"));
    MOAT_ASSIGN_OR_RETURN(auto source, string_field(m, "source", "mounts.source"));
    std::vector<std::string> options;
    if (auto it = m.find("options"); it != m.end() && !it->is_null()) {
      MOAT_ASSIGN_OR_RETURN(options, string_list(*it, "mounts.options", 256));
    }
    if (destination.empty() || destination[0] != '/') return bad("mounts.destination", "\"" + destination + "\" is not absolute");
    bool bind = type == "bind" || has_option(options, "bind") || has_option(options, "rbind");
    if (!bind && guest_made(type, destination)) continue;
    if (type == "tmpfs" && !bind) {
      c.tmpfs.push_back({destination, tmpfs_size(options)});
      continue;
    }
    if (!bind) {
      c.unsupported.push_back("mounts " + destination + ": type \"" + type + "\" is not supported");
      continue;
    }
    if (source.empty() || source[0] != '/') return bad("mounts.source", "\"" + source + "\" is not absolute");
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0)
      return Error{errno, "config.json: mounts: bind source " + source + ": " + std::strerror(errno)};
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
      c.unsupported.push_back("mounts " + destination + ": " + source + " is neither a directory nor a file");
      continue;
    }
    c.binds.push_back({source, destination, has_option(options, "ro"), S_ISREG(st.st_mode) != 0});
  }
  return ok_status();
}

// MiB of guest memory for a memory limit in bytes: the limit itself (the
// guest kernel's own share comes out of it, as a cgroup's page cache does),
// at least what moat boots with.
int memory_mib_for(std::uint64_t limit) {
  std::uint64_t mib = (limit + (1u << 20) - 1) >> 20;
  return static_cast<int>(std::clamp<std::uint64_t>(mib, 128, 262144));
}

Status read_resources(const json& linux_obj, BundleConfig& c) {
  auto res = linux_obj.find("resources");
  if (res == linux_obj.end() || !res->is_object()) return ok_status();
  if (auto mem = res->find("memory"); mem != res->end() && mem->is_object()) {
    if (auto lim = mem->find("limit"); lim != mem->end() && lim->is_number_integer() && lim->get<std::int64_t>() > 0)
      c.memory_mib = memory_mib_for(lim->get<std::uint64_t>());
  }
  if (auto cpu = res->find("cpu"); cpu != res->end() && cpu->is_object()) {
    auto quota = cpu->value("quota", json(0));
    auto period = cpu->value("period", json(0));
    if (quota.is_number_integer() && period.is_number_integer() && quota.get<std::int64_t>() > 0 &&
        period.get<std::int64_t>() > 0) {
      std::int64_t q = quota.get<std::int64_t>(), p = period.get<std::int64_t>();
      c.cpus = static_cast<int>(std::clamp<std::int64_t>((q + p - 1) / p, 1, 64));
    }
  }
  for (const char* key : {"pids", "blockIO", "hugepageLimits", "network", "rdma", "unified"}) {
    if (res->contains(key) && !(*res)[key].is_null())
      c.unsupported.push_back(std::string("linux.resources.") + key + ": not applied (the VM's size bounds the container)");
  }
  return ok_status();
}

Status read_linux(const json& j, BundleConfig& c) {
  auto it = j.find("linux");
  if (it == j.end() || !it->is_object()) return ok_status();
  MOAT_TRY(read_resources(*it, c));
  if (auto ns = it->find("namespaces"); ns != it->end() && !ns->is_null()) {
    if (!ns->is_array()) return bad("linux.namespaces", "expected an array");
    for (const auto& n : *ns) {
      if (!n.is_object()) return bad("linux.namespaces", "expected objects");
      MOAT_ASSIGN_OR_RETURN(auto type, string_field(n, "type", "linux.namespaces.type"));
      if (type != "network") continue;
      MOAT_ASSIGN_OR_RETURN(auto path, string_field(n, "path", "linux.namespaces network path"));
      if (path.empty()) {
        c.network_namespace = NetworkNamespace::kFresh;
      } else {
        if (path[0] != '/') return bad("linux.namespaces network path", "must be an absolute path");
        c.network_namespace = NetworkNamespace::kJoin;
        c.network_namespace_path = path;
      }
    }
  }
  for (const char* key : {"seccomp", "devices", "sysctl", "maskedPaths", "readonlyPaths", "uidMappings"}) {
    if (it->contains(key) && !(*it)[key].is_null() && !(*it)[key].empty())
      c.unsupported.push_back(std::string("linux.") + key + ": the guest kernel's own apply (the VM is the boundary)");
  }
  return ok_status();
}

// "a,b , c" -> {"a", "b", "c"}: annotations are strings, so lists are
// comma-separated (no rule, port or address contains a comma).
std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

// io.moat.network=none|public|all, io.moat.network.allow / .deny=RULE,...
// (all allows first, then all denies: one annotation cannot order them),
// io.moat.network.publish=[IP:]HP:GP[/udp],..., io.moat.network.dns=IP[:PORT],
// io.moat.network.publish-listening=IP|none.
Status read_network_annotations(BundleConfig& c) {
  auto get = [&](const char* key) -> const std::string* {
    auto a = c.annotations.find(key);
    return a == c.annotations.end() ? nullptr : &a->second;
  };
  if (const auto* mode = get("io.moat.network")) {
    auto m = parse_network_mode(*mode);
    if (!m) return bad("annotations.io.moat.network", m.error().message);
    c.network_mode = *m;
  }
  for (bool allow : {true, false}) {
    if (const auto* rules = get(allow ? "io.moat.network.allow" : "io.moat.network.deny")) {
      for (auto& r : comma_list(*rules)) c.network.rules.push_back({allow, r});
    }
  }
  if (const auto* ports = get("io.moat.network.publish")) {
    for (const auto& p : comma_list(*ports)) {
      auto port = parse_published_port(p);
      if (!port) return bad("annotations.io.moat.network.publish", port.error().message);
      c.network.ports.push_back(*port);
    }
  }
  if (const auto* dns = get("io.moat.network.dns")) c.network.dns = *dns;
  // The engine publishes ports (podman -p, a Service) to the address the
  // container has in its namespace, and the config does not say which: by
  // default every port the guest listens on is opened there, as a
  // container's own would be.
  if (const auto* listening = get("io.moat.network.publish-listening"))
    c.network.publish_listening = *listening == "none" ? "" : *listening;
  else if (c.network_namespace == NetworkNamespace::kJoin)
    c.network.publish_listening = "0.0.0.0";
  if (c.network.rules.size() > kMaxNetworkRules)
    return bad("annotations.io.moat.network.allow/deny", "more than " + std::to_string(kMaxNetworkRules) + " rules");
  if (auto st = validate_network(c.network); !st) return bad("annotations.io.moat.network*", st.error().message);
  return ok_status();
}

Status read_annotations(const json& j, BundleConfig& c) {
  auto it = j.find("annotations");
  if (it == j.end() || it->is_null()) return ok_status();
  if (!it->is_object()) return bad("annotations", "expected an object");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) return bad("annotations." + k, "expected a string");
    c.annotations[k] = v.get<std::string>();
  }
  auto number = [&](const char* key, int min, int max, int& out) -> Status {
    auto a = c.annotations.find(key);
    if (a == c.annotations.end()) return ok_status();
    char* end = nullptr;
    long n = std::strtol(a->second.c_str(), &end, 10);
    if (a->second.empty() || *end || n < min || n > max)
      return bad(std::string("annotations.") + key, "expected a number from " + std::to_string(min) + " to " + std::to_string(max));
    out = static_cast<int>(n);
    return ok_status();
  };
  for (const char* key : {"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"}) {
    auto a = c.annotations.find(key);
    if (a != c.annotations.end() && a->second == "sandbox") c.pod_sandbox = true;
  }
  MOAT_TRY(number("io.moat.memory", 64, 262144, c.memory_mib));
  MOAT_TRY(number("io.moat.cpus", 1, 64, c.cpus));
  return read_network_annotations(c);
}

}  // namespace

Result<ProcessSpec> parse_process(const std::string& json_text, std::vector<std::string>& unsupported) {
  MOAT_ASSIGN_OR_RETURN(auto j, parse_json_object(json_text, "process", kMaxConfigBytes));
  return process_from(j, unsupported);
}

Result<BundleConfig> read_bundle_config(const std::string& bundle) {
  if (bundle.empty() || bundle[0] != '/') return make_error("bundle " + bundle + ": not an absolute path", EINVAL);
  MOAT_ASSIGN_OR_RETURN(auto text, read_file_bounded(bundle + "/config.json", kMaxConfigBytes));
  return parse_bundle_config(text, bundle);
}

Result<BundleConfig> parse_bundle_config(std::string_view text, const std::string& bundle) {
  MOAT_ASSIGN_OR_RETURN(auto j, parse_json_object(text, bundle + "/config.json", kMaxConfigBytes));
  BundleConfig c;
  MOAT_ASSIGN_OR_RETURN(c.oci_version, string_field(j, "ociVersion", "ociVersion"));
  auto proc = j.find("process");
  if (proc == j.end()) return bad("process", "missing (moat-runtime runs a process)");
  MOAT_ASSIGN_OR_RETURN(c.process, process_from(*proc, c.unsupported));
  auto root = j.find("root");
  if (root == j.end() || !root->is_object()) return bad("root", "missing");
  MOAT_ASSIGN_OR_RETURN(auto root_path, string_field(*root, "path", "root.path"));
  if (root_path.empty()) return bad("root.path", "missing");
  c.rootfs = root_path[0] == '/' ? root_path : bundle + "/" + root_path;
  if (auto ro = root->find("readonly"); ro != root->end() && ro->is_boolean()) c.root_readonly = ro->get<bool>();
  MOAT_ASSIGN_OR_RETURN(c.hostname, string_field(j, "hostname", "hostname"));
  if (auto m = j.find("mounts"); m != j.end() && !m->is_null()) MOAT_TRY(read_mounts(*m, c));
  MOAT_TRY(read_linux(j, c));
  MOAT_TRY(read_annotations(j, c));
  if (j.contains("hooks") && !j["hooks"].empty())
    c.unsupported.push_back("hooks: not run (they expect the container's namespaces on the host)");
  return c;
}

Result<ResourceUpdate> parse_resource_update(std::string_view text) {
  MOAT_ASSIGN_OR_RETURN(auto j, parse_json_object(text, "resources", kMaxConfigBytes));
  BundleConfig c;
  MOAT_TRY(read_resources(json{{"resources", std::move(j)}}, c));
  return ResourceUpdate{c.memory_mib, c.cpus, std::move(c.unsupported)};
}

}  // namespace moat::oci
