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

Status write_shim_config(const ShimConfig& c, const std::string& path) {
  Json disks = Json::array();
  for (const auto& d : c.vm.disks) disks.push_back({{"path", d.path}, {"read_only", d.read_only}});
  Json j = {
      {"sandbox_id", c.sandbox_id},
      {"dir", c.dir},
      {"boot_timeout_ms", c.boot_timeout_ms},
      {"stop_timeout_ms", c.stop_timeout_ms},
      {"stop_when_owner_leaves", c.stop_when_owner_leaves},
      {"remove_dir_on_exit", c.remove_dir_on_exit},
      {"discard_on_stop", c.discard_on_stop},
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
        {"extra_kernel_args", c.vm.extra_kernel_args}}},
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
    return c;
  } catch (const std::exception& e) {
    return make_error(path + ": " + e.what());
  }
}

}  // namespace moat::shim
