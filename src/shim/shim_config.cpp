#include "shim/shim_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace moat::shim {

using Json = nlohmann::json;

std::string control_socket_path(const std::string& dir) { return dir + "/control.sock"; }
std::string console_log_path(const std::string& dir) { return dir + "/console.log"; }
std::string last_exit_path(const std::string& dir) { return dir + "/last_exit.json"; }
std::string shim_lock_path(const std::string& dir) { return dir + "/shim.lock"; }
std::string exec_log_path(const std::string& dir) { return dir + "/exec.log"; }
std::string volume_socket_path(const std::string& dir, const std::string& tag) { return dir + "/fs-" + tag + ".sock"; }

Status write_shim_exit(const ShimExit& e, const std::string& dir) {
  std::string path = last_exit_path(dir);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Json{{"clean", e.clean}, {"reason", e.reason}}.dump() << "\n";
    out.flush();
    if (!out) return make_error("write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("rename " + tmp);
  return ok_status();
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
  for (const auto& d : c.vm.disks) disks.push_back({{"path", d.path}, {"read_only", d.read_only}});
  Json volumes = Json::array();
  for (const auto& v : c.volumes)
    volumes.push_back({{"tag", v.tag}, {"host_path", v.host_path}, {"read_only", v.read_only}});
  Json mounts = Json::array();
  for (const auto& m : c.vm.mounts) mounts.push_back(proto::encode_guest_mount(m));
  Json j = {
      {"sandbox_id", c.sandbox_id},
      {"dir", c.dir},
      {"boot_timeout_ms", c.boot_timeout_ms},
      {"stop_timeout_ms", c.stop_timeout_ms},
      {"stop_when_owner_leaves", c.stop_when_owner_leaves},
      {"remove_dir_on_exit", c.remove_dir_on_exit},
      {"discard_on_stop", c.discard_on_stop},
      {"idle_timeout_s", c.idle_timeout_s},
      {"max_duration_s", c.max_duration_s},
      {"volumes", volumes},
      {"vm",
       {{"qemu", c.vm.qemu},
        {"kernel", c.vm.kernel},
        {"initrd", c.vm.initrd},
        {"accel", vm::accel_name(c.vm.accel)},
        {"cpus", c.vm.cpus},
        {"memory_mib", c.vm.memory_mib},
        {"tcg_tb_size_mib", c.vm.tcg_tb_size_mib},
        {"disks", disks},
        {"root_mode", c.vm.root_mode},
        {"lower_fs", c.vm.lower_fs},
        {"hostname", c.vm.hostname},
        {"extra_kernel_args", c.vm.extra_kernel_args},
        {"mounts", mounts},
        {"extra_qemu_args", c.vm.extra_qemu_args}}},
  };
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
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
    c.sandbox_id = j.at("sandbox_id").get<std::string>();
    c.dir = j.at("dir").get<std::string>();
    c.boot_timeout_ms = j.at("boot_timeout_ms").get<int>();
    c.stop_timeout_ms = j.at("stop_timeout_ms").get<int>();
    c.stop_when_owner_leaves = j.at("stop_when_owner_leaves").get<bool>();
    c.remove_dir_on_exit = j.at("remove_dir_on_exit").get<bool>();
    c.discard_on_stop = j.value("discard_on_stop", false);
    c.idle_timeout_s = j.value("idle_timeout_s", std::uint64_t{0});
    c.max_duration_s = j.value("max_duration_s", std::uint64_t{0});
    const Json& v = j.at("vm");
    c.vm.qemu = v.at("qemu").get<std::string>();
    c.vm.kernel = v.at("kernel").get<std::string>();
    c.vm.initrd = v.at("initrd").get<std::string>();
    c.vm.accel = v.at("accel").get<std::string>() == "kvm" ? vm::Accel::kKvm : vm::Accel::kTcg;
    c.vm.cpus = v.at("cpus").get<int>();
    c.vm.memory_mib = v.at("memory_mib").get<int>();
    c.vm.tcg_tb_size_mib = v.at("tcg_tb_size_mib").get<int>();
    for (const auto& d : v.at("disks")) c.vm.disks.push_back({d.at("path").get<std::string>(), d.at("read_only").get<bool>()});
    c.vm.root_mode = v.at("root_mode").get<std::string>();
    c.vm.lower_fs = v.at("lower_fs").get<std::string>();
    c.vm.hostname = v.at("hostname").get<std::string>();
    c.vm.extra_kernel_args = v.at("extra_kernel_args").get<std::vector<std::string>>();
    c.vm.extra_qemu_args = v.value("extra_qemu_args", std::vector<std::string>{});
    for (const auto& text : v.value("mounts", Json::array())) {
      MOAT_ASSIGN_OR_RETURN(auto m, proto::decode_guest_mount(text.get<std::string>()));
      c.vm.mounts.push_back(std::move(m));
    }
    for (const auto& vol : j.value("volumes", Json::array()))
      c.volumes.push_back({vol.at("tag").get<std::string>(), vol.at("host_path").get<std::string>(),
                           vol.at("read_only").get<bool>()});
    return c;
  } catch (const std::exception& e) {
    return make_error(path + ": " + e.what());
  }
}

}  // namespace moat::shim
