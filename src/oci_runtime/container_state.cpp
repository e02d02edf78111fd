#include "oci_runtime/container_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "moat/sandboxes.h"
#include "util/json_object.h"
#include "util/read_file.h"
#include "util/write_file_atomic.h"

namespace moat::oci {
namespace {

constexpr std::size_t kMaxStateBytes = 1u << 20;

std::string state_path(const StateDir& d, const std::string& id) { return d.dir_of(id) + "/state.json"; }

Status make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return make_error("create " + path + ": " + ec.message(), ec.value());
  return ok_status();
}

}  // namespace

const char* to_string(ContainerStatus s) {
  switch (s) {
    case ContainerStatus::kCreated: return "created";
    case ContainerStatus::kRunning: return "running";
    case ContainerStatus::kPaused: return "paused";
    case ContainerStatus::kStopped: return "stopped";
  }
  return "unknown";
}

Status check_container_id(const std::string& id) {
  bool ok = !id.empty() && id.size() <= NAME_MAX && id != "." && id != ".." && id != "moat";
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '+' || c == '-' || c == '.')) ok = false;
  }
  if (id.empty()) return make_error("container id cannot be empty", EINVAL);
  if (!ok) return make_error("invalid container ID format: " + id, EINVAL);
  return ok_status();
}

Status StateDir::make(const std::string& id) const {
  MOAT_TRY(make_dirs(root_));
  ::chmod(root_.c_str(), 0700);
  std::string dir = dir_of(id);
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return make_error("container with given ID already exists: " + id, EEXIST);
    return errno_error("create " + dir);
  }
  return ok_status();
}

Status StateDir::save(const ContainerRecord& r) const {
  nlohmann::json j = {{"id", r.id},
                      {"ociVersion", r.oci_version},
                      {"bundle", r.bundle},
                      {"rootfs", r.rootfs},
                      {"created", r.created},
                      {"annotations", r.annotations},
                      {"sandbox", r.sandbox},
                      {"keeperPid", r.keeper_pid},
                      {"keeperStart", r.keeper_start}};
  return write_file_atomic(state_path(*this, r.id), j.dump(), 0600);
}

Result<ContainerRecord> StateDir::load(const std::string& id) const {
  MOAT_TRY(check_container_id(id));
  auto text = read_file_bounded(state_path(*this, id), kMaxStateBytes);
  if (!text) {
    if (text.error().code == ENOENT) return make_error("container does not exist: " + id, ENOENT);
    return text.error();
  }
  MOAT_ASSIGN_OR_RETURN(auto j, parse_json_object(*text, state_path(*this, id), kMaxStateBytes));
  ContainerRecord r;
  try {
    r.id = j.at("id").get<std::string>();
    r.oci_version = j.at("ociVersion").get<std::string>();
    r.bundle = j.at("bundle").get<std::string>();
    r.rootfs = j.at("rootfs").get<std::string>();
    r.created = j.at("created").get<std::string>();
    r.annotations = j.at("annotations").get<std::map<std::string, std::string>>();
    r.sandbox = j.at("sandbox").get<std::string>();
    r.keeper_pid = j.at("keeperPid").get<pid_t>();
    r.keeper_start = j.at("keeperStart").get<std::uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return make_error(state_path(*this, id) + ": " + e.what(), EINVAL);
  }
  if (r.id != id) return make_error(state_path(*this, id) + ": names another container", EINVAL);
  return r;
}

std::vector<ContainerRecord> StateDir::list() const {
  std::vector<ContainerRecord> out;
  DIR* d = ::opendir(root_.c_str());
  if (!d) return out;
  std::vector<std::string> ids;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (check_container_id(name)) ids.push_back(name);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (const auto& id : ids) {
    if (auto r = load(id)) out.push_back(std::move(*r));
  }
  return out;
}

Status StateDir::remove(const std::string& id) const {
  MOAT_TRY(check_container_id(id));
  std::error_code ec;
  std::filesystem::remove_all(dir_of(id), ec);
  if (ec) return make_error("remove " + dir_of(id) + ": " + ec.message(), ec.value());
  return ok_status();
}

Result<UniqueFd> StateDir::lock(const std::string& id) const {
  std::string path = dir_of(id) + "/lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == ENOENT) return make_error("container does not exist: " + id, ENOENT);
    return errno_error("open " + path);
  }
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_error("lock " + path);
  }
  return fd;
}

std::uint64_t process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  auto text = read_file_bounded("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!text) return 0;
  // The name (field 2) may hold spaces and parentheses: fields 3 on start
  // after the last ')'.
  auto close = text->rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::size_t at = close + 2;
  while (at < text->size() && fields.size() < 20) {
    auto space = text->find(' ', at);
    if (space == std::string::npos) space = text->size();
    fields.push_back(text->substr(at, space - at));
    at = space + 1;
  }
  // fields[0] is field 3 (state), fields[19] field 22 (starttime).
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return 0;
  return std::strtoull(fields[19].c_str(), nullptr, 10);
}

bool keeper_alive(const ContainerRecord& r) {
  return r.keeper_pid > 0 && r.keeper_start != 0 && process_start_time(r.keeper_pid) == r.keeper_start;
}

ContainerStatus status_of(const StateDir& dir, const ContainerRecord& r) {
  if (!keeper_alive(r)) return ContainerStatus::kStopped;
  struct stat st {};
  bool started = ::stat((dir.dir_of(r.id) + "/started").c_str(), &st) == 0;
  if (!started) return ContainerStatus::kCreated;
  // Paused is the sandbox's state (its shim's word), not a file of ours.
  if (!r.sandbox.empty())
    if (auto info = inspect_sandbox(r.sandbox); info && info->paused) return ContainerStatus::kPaused;
  return ContainerStatus::kRunning;
}

std::string state_json(const ContainerRecord& r, ContainerStatus status) {
  nlohmann::ordered_json j;
  j["ociVersion"] = r.oci_version;
  j["id"] = r.id;
  j["pid"] = status == ContainerStatus::kStopped ? 0 : r.keeper_pid;
  j["status"] = to_string(status);
  j["bundle"] = r.bundle;
  j["rootfs"] = r.rootfs;
  j["created"] = r.created;
  if (!r.annotations.empty()) j["annotations"] = r.annotations;
  j["owner"] = "";
  return j.dump(2);
}

std::string rfc3339_now() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  ::gmtime_r(&ts.tv_sec, &tm);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
  // Go's RFC3339Nano: the fraction without trailing zeros, none if zero.
  char frac[16];
  std::snprintf(frac, sizeof(frac), ".%09ld", ts.tv_nsec);
  std::string f = frac;
  while (!f.empty() && f.back() == '0') f.pop_back();
  if (f == ".") f.clear();
  return std::string(date) + f + "Z";
}

}  // namespace moat::oci
