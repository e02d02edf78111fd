#include "jail/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <sstream>

#include "util/read_file.h"

namespace moat::jail {
namespace {

constexpr std::size_t kMaxProcFile = 1 << 20;
constexpr const char* kControllers[] = {"memory", "pids", "cpu"};
// The I/O controller is optional: only an I/O weight needs it.
constexpr const char* kIoControllerV1 = "blkio";
constexpr const char* kIoControllerV2 = "io";
constexpr std::uint64_t kCpuPeriodUs = 100000;

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

bool contains(const std::vector<std::string>& words, const std::string& word) {
  for (const auto& w : words) {
    if (w == word) return true;
  }
  return false;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3; ++k) {
        if (s[i + k] < '0' || s[i + k] > '7') octal = false;
        else v = v * 8 + (s[i + k] - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct CgroupMount {
  std::string fstype;  // "cgroup" or "cgroup2"
  std::string root;    // the mount's root within the hierarchy
  std::string point;
  std::vector<std::string> options;  // super options: v1's controllers
};

Result<std::vector<CgroupMount>> cgroup_mounts() {
  MOAT_ASSIGN_OR_RETURN(std::string info, read_file_bounded("/proc/self/mountinfo", kMaxProcFile));
  std::vector<CgroupMount> mounts;
  for (const auto& line : split(info, '\n')) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto before = split(line.substr(0, dash), ' ');
    auto after = split(line.substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    if (after[0] != "cgroup" && after[0] != "cgroup2") continue;
    mounts.push_back({after[0], unescape_octal(before[3]), unescape_octal(before[4]), split(after[2], ',')});
  }
  return mounts;
}

// /proc/self/cgroup: "0::/path" (v2) and "N:controllers:/path" (v1).
struct Membership {
  std::string v2_path;
  bool has_v2 = false;
  std::vector<std::pair<std::vector<std::string>, std::string>> v1;  // controllers, path
};

Result<Membership> own_membership() {
  MOAT_ASSIGN_OR_RETURN(std::string text, read_file_bounded("/proc/self/cgroup", kMaxProcFile));
  Membership m;
  for (const auto& line : split(text, '\n')) {
    auto first = line.find(':');
    auto second = first == std::string::npos ? std::string::npos : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      m.has_v2 = true;
      m.v2_path = path;
    } else {
      m.v1.emplace_back(split(controllers, ','), path);
    }
  }
  return m;
}

// The directory of `path` (the group as /proc/self/cgroup names it) on
// `mount`, or an error when the mount does not show it (a mount of some
// other part of the hierarchy).
Result<std::string> directory_on(const CgroupMount& mount, const std::string& path) {
  std::string relative;
  if (mount.root == "/") {
    relative = path;
  } else if (path == mount.root || path.compare(0, mount.root.size() + 1, mount.root + "/") == 0) {
    relative = path.substr(mount.root.size());
  } else {
    return make_error("the cgroup " + path + " is not under the mount at " + mount.point, ENOENT);
  }
  while (!relative.empty() && relative.back() == '/') relative.pop_back();
  return mount.point + relative;
}

// The words of a one-line cgroup v2 list file ("cpu memory pids\n").
std::vector<std::string> words_of(const std::string& path) {
  auto text = read_file_bounded(path, 4096);
  if (!text.ok()) return {};
  std::string line = text->substr(0, text->find('\n'));
  return split(line, ' ');
}

bool v2_has_all(const std::string& dir) {
  auto words = words_of(dir + "/cgroup.controllers");
  for (const char* c : kControllers) {
    if (!contains(words, c)) return false;
  }
  return true;
}

Status write_value(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) return errno_error("write " + value + " to " + path);
  if (static_cast<std::size_t>(n) != value.size()) return make_error("short write to " + path, EIO);
  return {};
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Makes `dir`, first removing an empty one left by an earlier run.
Status make_group(const std::string& dir) {
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    if (errno == EBUSY) return make_error("the cgroup " + dir + " still has processes in it", EBUSY);
    return errno_error("rmdir " + dir);
  }
  if (::mkdir(dir.c_str(), 0755) != 0) return errno_error("mkdir " + dir);
  return {};
}

Status enable_v2_controllers(const std::string& parent, bool with_io) {
  auto enabled = words_of(parent + "/cgroup.subtree_control");
  std::vector<const char*> wanted(std::begin(kControllers), std::end(kControllers));
  if (with_io) {
    if (!contains(words_of(parent + "/cgroup.controllers"), kIoControllerV2))
      return make_error("--io-weight: cgroup v2's io controller is not available in " + parent, ENOTSUP);
    wanted.push_back(kIoControllerV2);
  }
  for (const char* c : wanted) {
    if (contains(enabled, c)) continue;
    auto written = write_value(parent + "/cgroup.subtree_control", std::string("+") + c);
    if (!written.ok()) {
      if (written.error().code == EBUSY) {
        return make_error("cannot enable the " + std::string(c) + " controller for the children of " + parent +
                              ": cgroup v2 allows it only in a group without processes (run moat in a group "
                              "delegated to it, e.g. `systemd-run --scope -p Delegate=yes moat ...`)",
                          EBUSY);
      }
      return written.error();
    }
  }
  return {};
}

// Where the caller's groups are: the version, and the directory of each
// controller's group (one under v2).
struct CgroupPlace {
  CgroupVersion version = CgroupVersion::kV2;
  std::vector<std::string> parents;
  std::string io_parent_v1;  // v1's blkio group, "" if none is mounted (optional: only --io-weight needs it)
};

// The caller's group of v1's `controller`, or "" when no hierarchy has it.
std::string v1_directory(const char* controller, const std::vector<CgroupMount>& mounts,
                         const Membership& membership) {
  for (const auto& [controllers, path] : membership.v1) {
    if (!contains(controllers, controller)) continue;
    for (const auto& m : mounts) {
      if (m.fstype != "cgroup" || !contains(m.options, controller)) continue;
      auto dir = directory_on(m, path);
      if (dir.ok()) return *dir;
    }
  }
  return "";
}

Result<CgroupPlace> find_cgroup_place() {
  MOAT_ASSIGN_OR_RETURN(auto mounts, cgroup_mounts());
  MOAT_ASSIGN_OR_RETURN(auto membership, own_membership());
  if (membership.has_v2) {
    for (const auto& m : mounts) {
      if (m.fstype != "cgroup2") continue;
      auto dir = directory_on(m, membership.v2_path);
      if (dir.ok() && v2_has_all(*dir)) return CgroupPlace{CgroupVersion::kV2, {*dir}, ""};
    }
  }
  CgroupPlace place{CgroupVersion::kV1, {}, v1_directory(kIoControllerV1, mounts, membership)};
  for (const char* controller : kControllers) {
    std::string found = v1_directory(controller, mounts, membership);
    if (found.empty()) {
      return make_error(std::string("no cgroup hierarchy with the ") + controller +
                            " controller is mounted (neither cgroup v2 with memory, pids and cpu nor v1's " +
                            controller + ")",
                        ENOENT);
    }
    place.parents.push_back(found);
  }
  return place;
}

Status check_group_name(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return make_error("bad cgroup name '" + name + "'", EINVAL);
  }
  return {};
}

}  // namespace

Result<std::pair<std::string, std::string>> io_weight_setting(CgroupVersion version, const std::string& dir,
                                                            std::uint32_t weight) {
  auto clamped = [&](std::uint32_t lo, std::uint32_t hi) { return std::to_string(std::clamp(weight, lo, hi)); };
  const bool v2 = version == CgroupVersion::kV2;
  std::string bfq = dir + (v2 ? "/io.bfq.weight" : "/blkio.bfq.weight");
  if (exists(bfq)) return std::pair{bfq, clamped(1, 1000)};
  std::string other = dir + (v2 ? "/io.weight" : "/blkio.weight");
  if (exists(other)) return std::pair{other, v2 ? clamped(1, 10000) : clamped(10, 1000)};
  return make_error(std::string("--io-weight: this host's kernel offers no I/O weight (") +
                        (v2 ? "cgroup v2's io controller has neither io.bfq.weight nor io.weight"
                            : "cgroup v1's blkio has neither blkio.bfq.weight nor blkio.weight") +
                        ": a weight needs the BFQ I/O scheduler" + (v2 ? " or io.cost" : " or CFQ") +
                        "); leave --io-weight out here",
                    ENOTSUP);
}

Status remove_cgroup(const std::string& name) {
  MOAT_TRY(check_group_name(name));
  MOAT_ASSIGN_OR_RETURN(auto place, find_cgroup_place());
  if (!place.io_parent_v1.empty()) place.parents.push_back(place.io_parent_v1);
  for (const auto& parent : place.parents) {
    std::string dir = parent + "/" + name;
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return errno_error("rmdir " + dir);
  }
  return {};
}

std::string describe(CgroupVersion version) { return version == CgroupVersion::kV2 ? "cgroup v2" : "cgroup v1"; }

Cgroup::Cgroup(Cgroup&& o) noexcept = default;

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
  if (this != &o) {
    (void)remove();
    version_ = o.version_;
    paths_ = std::move(o.paths_);
    procs_ = std::move(o.procs_);
    memory_limit_ = o.memory_limit_;
    o.paths_.clear();
  }
  return *this;
}

Cgroup::~Cgroup() { (void)remove(); }

Result<Cgroup> Cgroup::create(const std::string& name, const CgroupLimits& limits) {
  MOAT_TRY(check_group_name(name));
  MOAT_ASSIGN_OR_RETURN(auto place, find_cgroup_place());
  Cgroup g;
  g.version_ = place.version;
  if (place.version == CgroupVersion::kV2) {
    MOAT_TRY(enable_v2_controllers(place.parents[0], limits.io_weight != 0));
  } else if (limits.io_weight != 0) {
    if (place.io_parent_v1.empty())
      return make_error("--io-weight: no cgroup v1 hierarchy with the blkio controller is mounted", ENOTSUP);
    place.parents.push_back(place.io_parent_v1);  // after kControllers' (path_of)
  }
  for (const auto& parent : place.parents) {
    std::string dir = parent + "/" + name;
    MOAT_TRY(make_group(dir));
    g.paths_.push_back(dir);
  }

  const bool v2 = g.version_ == CgroupVersion::kV2;
  g.memory_limit_ = limits.memory_bytes;
  g.pids_limit_ = limits.pids;
  if (limits.memory_bytes != 0) {
    std::string bytes = std::to_string(limits.memory_bytes);
    MOAT_TRY(write_value(g.path_of("memory") + (v2 ? "/memory.max" : "/memory.limit_in_bytes"), bytes));
    // No swap beyond the limit, where the kernel accounts swap at all.
    std::string swap = g.path_of("memory") + (v2 ? "/memory.swap.max" : "/memory.memsw.limit_in_bytes");
    if (exists(swap)) MOAT_TRY(write_value(swap, v2 ? "0" : bytes));
  }
  if (limits.pids != 0) MOAT_TRY(write_value(g.path_of("pids") + "/pids.max", std::to_string(limits.pids)));
  if (limits.cpu_weight != 0) {
    if (v2) {
      MOAT_TRY(write_value(g.path_of("cpu") + "/cpu.weight", std::to_string(limits.cpu_weight)));
    } else {
      std::uint64_t shares = std::max<std::uint64_t>(2, std::uint64_t{limits.cpu_weight} * 1024 / 100);
      MOAT_TRY(write_value(g.path_of("cpu") + "/cpu.shares", std::to_string(shares)));
    }
  }
  if (limits.io_weight != 0) {
    MOAT_ASSIGN_OR_RETURN(auto setting, io_weight_setting(g.version_, g.path_of(v2 ? kIoControllerV2 : kIoControllerV1),
                                                          limits.io_weight));
    MOAT_TRY(write_value(setting.first, setting.second));
  }
  if (limits.cpu_millis != 0) {
    std::uint64_t quota = kCpuPeriodUs * limits.cpu_millis / 1000;
    if (v2) {
      MOAT_TRY(write_value(g.path_of("cpu") + "/cpu.max", std::to_string(quota) + " " + std::to_string(kCpuPeriodUs)));
    } else {
      MOAT_TRY(write_value(g.path_of("cpu") + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
      MOAT_TRY(write_value(g.path_of("cpu") + "/cpu.cfs_quota_us", std::to_string(quota)));
    }
  }
  for (const auto& dir : g.paths_) {
    UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return errno_error("open " + dir + "/cgroup.procs");
    g.procs_.push_back(std::move(fd));
  }
  return g;
}

std::uint64_t Cgroup::oom_kills() const {
  if (paths_.empty()) return 0;
  // The memory group comes first (kControllers); v1 counts in
  // memory.oom_control, v2 in memory.events, both as "oom_kill N".
  std::string file = paths_[0] + (version_ == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control");
  auto text = read_file_bounded(file, 4096);
  if (!text.ok()) return 0;
  for (const auto& line : split(*text, '\n')) {
    if (line.rfind("oom_kill ", 0) == 0) return std::strtoull(line.c_str() + 9, nullptr, 10);
  }
  return 0;
}

const std::string& Cgroup::path_of(const char* controller) const {
  if (version_ == CgroupVersion::kV1) {
    for (std::size_t i = 0; i < std::size(kControllers) && i < paths_.size(); ++i)
      if (std::string(kControllers[i]) == controller) return paths_[i];
    // blkio's group, made only for an I/O weight, comes after them.
    if (std::string(controller) == kIoControllerV1 && paths_.size() > std::size(kControllers))
      return paths_[std::size(kControllers)];
  }
  return paths_[0];
}

std::uint64_t Cgroup::memory_used() const {
  if (paths_.empty()) return 0;
  auto text = read_file_bounded(
      path_of("memory") + (version_ == CgroupVersion::kV2 ? "/memory.current" : "/memory.usage_in_bytes"), 64);
  return text.ok() ? std::strtoull(text->c_str(), nullptr, 10) : 0;
}

std::uint64_t Cgroup::tasks() const {
  if (paths_.empty()) return 0;
  auto text = read_file_bounded(path_of("pids") + "/pids.current", 64);
  return text.ok() ? std::strtoull(text->c_str(), nullptr, 10) : 0;
}

std::vector<int> Cgroup::procs_fds() const {
  std::vector<int> fds;
  for (const auto& fd : procs_) fds.push_back(fd.get());
  return fds;
}

Status Cgroup::remove() {
  procs_.clear();
  Status result;
  std::vector<std::string> left;
  for (const auto& dir : paths_) {
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      if (result.ok()) result = errno_error("rmdir " + dir);
      left.push_back(dir);
    }
  }
  paths_ = std::move(left);
  return result;
}

}  // namespace moat::jail
