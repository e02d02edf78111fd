#include "shim_contract/shim_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "proto/text.h"
#include "shim_contract/network_json.h"
#include "vm/accel.h"

namespace moat::shim {

using Json = nlohmann::json;
using proto::bytes_list_to_json;
using proto::bytes_to_json;

namespace {

// Paths (the state directory, -v sources) and the hostname are bytes: they
// are kept in the reversible form of proto/text.h, and read back from it.
std::string bytes_at(const Json& j, const char* key) {
  auto v = proto::bytes_from_json(j.at(key));
  if (!v) throw std::runtime_error(std::string("field \"") + key + "\" is not a string");
  return *v;
}

std::vector<std::string> bytes_list_at(const Json& j, const char* key, bool required) {
  if (!required && !j.contains(key)) return {};
  auto v = proto::bytes_list_from_json(j.at(key));
  if (!v) throw std::runtime_error(std::string("field \"") + key + "\" is not a list of strings");
  return *v;
}

}  // namespace

Status write_shim_exit(const ShimExit& e, const std::string& dir) {
  std::string path = last_exit_path(dir);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << proto::dump_lossy(Json{{"clean", e.clean}, {"reason", e.reason}}) << "\n";
    out.flush();
    if (!out) return make_error("write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("rename " + tmp);
  return ok_status();
}

pid_t read_shim_pid(const std::string& dir) {
  std::ifstream in(shim_pid_path(dir));
  long pid = 0;
  if (in >> pid && pid > 1 && pid < (1L << 22)) return static_cast<pid_t>(pid);
  return 0;
}

Result<ShimExit> read_shim_exit(const std::string& dir) {
  std::ifstream in(last_exit_path(dir));
  if (!in) return errno_error("open " + last_exit_path(dir));
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("clean") || !j["clean"].is_boolean())
    return make_error(last_exit_path(dir) + ": not a shim exit record");
  ShimExit e;
  e.clean = j["clean"].get<bool>();
  if (j.contains("reason") && j["reason"].is_string()) e.reason = j["reason"].get<std::string>();
  return e;
}

Status write_shim_config(const ShimConfig& c, const std::string& path) {
  Json disks = Json::array();
  for (const auto& d : c.vm.disks) disks.push_back({{"path", bytes_to_json(d.path)}, {"read_only", d.read_only}});
  Json volumes = Json::array();
  for (const auto& v : c.volumes)
    volumes.push_back({{"tag", bytes_to_json(v.tag)},
                       {"host_path", bytes_to_json(v.host_path)},
                       {"read_only", v.read_only},
                       {"size_bytes", v.size_bytes}});
  Json mounts = Json::array();
  for (const auto& m : c.vm.mounts) mounts.push_back(proto::encode_guest_mount(m));
  Json j = {
      {"sandbox_id", bytes_to_json(c.sandbox_id)},
      {"dir", bytes_to_json(c.dir)},
      {"boot_timeout_ms", c.boot_timeout_ms},
      {"stop_timeout_ms", c.stop_timeout_ms},
      {"stop_when_owner_leaves", c.stop_when_owner_leaves},
      {"remove_dir_on_exit", c.remove_dir_on_exit},
      {"discard_on_stop", c.discard_on_stop},
      {"restore_from", bytes_to_json(c.restore_from)},
      {"restore_ram", bytes_to_json(c.restore_ram)},
      {"restore_ram_shared", c.restore_ram_shared},
      {"keep_dir_if_restore_fails", c.keep_dir_if_restore_fails},
      {"keep_ram_apart", c.keep_ram_apart},
      {"idle_timeout_s", c.idle_timeout_s},
      {"max_duration_s", c.max_duration_s},
      {"log_max_bytes", c.log_max_bytes},
      {"volumes", volumes},
      {"network", network_to_json(c.network)},
      {"vm",
       {{"qemu", bytes_to_json(c.vm.qemu)},
        {"kernel", bytes_to_json(c.vm.kernel)},
        {"initrd", bytes_to_json(c.vm.initrd)},
        {"accel", vm::accel_name(c.vm.accel)},
        {"cpus", c.vm.cpus},
        {"cpu_weight", c.vm.cpu_weight},
        {"io_weight", c.vm.io_weight},
        {"memory_mib", c.vm.memory_mib},
        {"tcg_tb_size_mib", c.vm.tcg_tb_size_mib},
        {"disks", disks},
        {"root_mode", bytes_to_json(c.vm.root_mode)},
        {"lower_fs", bytes_to_json(c.vm.lower_fs)},
        {"hostname", bytes_to_json(c.vm.hostname)},
        {"extra_kernel_args", bytes_list_to_json(c.vm.extra_kernel_args)},
        {"mounts", mounts},
        {"extra_qemu_args", bytes_list_to_json(c.vm.extra_qemu_args)}}},
  };
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << proto::dump_lossy(j, 2) << "\n";  // cannot be lossy: every string is UTF-8 here
    if (!out) return make_error("write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("rename " + tmp);
  return ok_status();
}

Result<ShimConfig> read_shim_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return errno_error("open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return make_error(path + " is not valid JSON");
  try {
    ShimConfig c;
    c.sandbox_id = bytes_at(j, "sandbox_id");
    c.dir = bytes_at(j, "dir");
    c.boot_timeout_ms = j.at("boot_timeout_ms").get<int>();
    c.stop_timeout_ms = j.at("stop_timeout_ms").get<int>();
    c.stop_when_owner_leaves = j.at("stop_when_owner_leaves").get<bool>();
    c.remove_dir_on_exit = j.at("remove_dir_on_exit").get<bool>();
    c.discard_on_stop = j.value("discard_on_stop", false);
    if (j.contains("restore_from")) c.restore_from = bytes_at(j, "restore_from");
    if (j.contains("restore_ram")) c.restore_ram = bytes_at(j, "restore_ram");
    c.restore_ram_shared = j.value("restore_ram_shared", false);
    c.keep_dir_if_restore_fails = j.value("keep_dir_if_restore_fails", false);
    c.keep_ram_apart = j.value("keep_ram_apart", false);
    c.idle_timeout_s = j.value("idle_timeout_s", std::uint64_t{0});
    c.max_duration_s = j.value("max_duration_s", std::uint64_t{0});
    c.log_max_bytes = j.value("log_max_bytes", kDefaultLogBytes);
    if (c.log_max_bytes < kMinLogBytes || c.log_max_bytes > kMaxLogBytes)
      return make_error(path + ": log_max_bytes must be between " + std::to_string(kMinLogBytes) + " and " +
                        std::to_string(kMaxLogBytes));
    const Json& v = j.at("vm");
    c.vm.qemu = bytes_at(v, "qemu");
    c.vm.kernel = bytes_at(v, "kernel");
    c.vm.initrd = bytes_at(v, "initrd");
    c.vm.accel = vm::accel_from_name(v.at("accel").get<std::string>());
    c.vm.cpus = v.at("cpus").get<int>();
    c.vm.cpu_weight = v.value("cpu_weight", 100u);
    if (c.vm.cpu_weight < 1 || c.vm.cpu_weight > 10000)
      return make_error(path + ": cpu_weight must be between 1 and 10000");
    c.vm.io_weight = v.value("io_weight", 0u);
    if (c.vm.io_weight > 10000) return make_error(path + ": io_weight must be between 0 and 10000");
    c.vm.memory_mib = v.at("memory_mib").get<int>();
    c.vm.tcg_tb_size_mib = v.at("tcg_tb_size_mib").get<int>();
    for (const auto& d : v.at("disks")) c.vm.disks.push_back({bytes_at(d, "path"), d.at("read_only").get<bool>()});
    c.vm.root_mode = bytes_at(v, "root_mode");
    c.vm.lower_fs = bytes_at(v, "lower_fs");
    c.vm.hostname = bytes_at(v, "hostname");
    c.vm.extra_kernel_args = bytes_list_at(v, "extra_kernel_args", true);
    c.vm.extra_qemu_args = bytes_list_at(v, "extra_qemu_args", false);
    for (const auto& text : v.value("mounts", Json::array())) {
      MOAT_ASSIGN_OR_RETURN(auto m, proto::decode_guest_mount(text.get<std::string>()));
      c.vm.mounts.push_back(std::move(m));
    }
    if (auto it = j.find("network"); it != j.end()) {
      auto network = network_from_json(*it);
      if (!network) return network.error().wrap(path);
      c.network = std::move(*network);
    }
    for (const auto& vol : j.value("volumes", Json::array()))
      c.volumes.push_back({bytes_at(vol, "tag"), bytes_at(vol, "host_path"), vol.at("read_only").get<bool>(),
                           vol.value("size_bytes", std::uint64_t{0})});
    return c;
  } catch (const std::exception& e) {
    return make_error(path + ": " + e.what());
  }
}

}  // namespace moat::shim
