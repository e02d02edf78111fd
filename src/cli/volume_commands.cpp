#include "cli/volume_commands.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/exec_runner.h"
#include "cli/json_output.h"
#include "moat/json.h"
#include "moat/volumes.h"

namespace moat::cli {
namespace {

using Json = nlohmann::json;

struct VolumeFlags {
  CLI::App* volume = nullptr;
  CLI::App* create = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* rm = nullptr;
  std::string name;
  std::vector<std::string> names;
  std::vector<std::string> labels;
  bool quiet = false;
  bool force = false;
  std::string format;
};

VolumeFlags& flags() {
  static VolumeFlags f;
  return f;
}

int fail(const std::string& message) {
  print_error(message);
  return kExitMoatError;
}

Json to_json(const VolumeInfo& v) { return Json::parse(to_json_text(v)); }

int create() {
  auto& f = flags();
  std::map<std::string, std::string> labels;
  for (const auto& l : f.labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) return fail("bad label \"" + l + "\": expected KEY=VALUE");
    labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  auto v = create_volume(f.name, labels);
  if (!v) return fail(v.error().message);
  std::printf("%s\n", v->name.c_str());
  return 0;
}

int ls() {
  auto& f = flags();
  auto list = list_volumes();
  if (!list) return fail(list.error().message);
  if (f.format == "json") {
    Json arr = Json::array();
    for (const auto& v : *list) arr.push_back(to_json(v));
    std::printf("%s\n", dump_lossy(arr, 2).c_str());
    return 0;
  }
  if (!f.format.empty() && f.format != "table") return fail("--format " + f.format + ": expected table or json");
  if (f.quiet) {
    for (const auto& v : *list) std::printf("%s\n", v.name.c_str());
    return 0;
  }
  std::printf("%-24s  %-20s  %s\n", "NAME", "CREATED", "USED BY");
  for (const auto& v : *list) {
    std::string users;
    for (const auto& u : v.used_by) users += (users.empty() ? "" : ",") + u;
    std::printf("%-24s  %-20s  %s\n", v.name.c_str(), utc_time_text(v.created_at).c_str(), users.empty() ? "-" : users.c_str());
  }
  return 0;
}

int inspect() {
  return print_inspected(flags().names, [](const std::string& name) { return inspect_volume(name); },
                         [](const VolumeInfo& v) { return to_json(v); });
}

int rm() {
  int code = 0;
  for (const auto& name : flags().names) {
    if (auto st = remove_volume(name, flags().force); !st) {
      print_error(st.error().message);
      code = kExitMoatError;
      continue;
    }
    std::printf("%s\n", name.c_str());
  }
  return code;
}

}  // namespace

void register_volume_commands(CLI::App& app) {
  auto& f = flags();
  f.volume = app.add_subcommand("volume", "Manage named volumes shared into sandboxes");
  f.volume->require_subcommand(1);
  f.create = f.volume->add_subcommand("create", "Create a named volume");
  f.create->add_option("name", f.name, "Volume name (default: a random one)");
  f.create->add_option("--label", f.labels, "Label KEY=VALUE (repeatable)")->allow_extra_args(false);
  f.ls = f.volume->add_subcommand("ls", "List volumes");
  f.ls->add_flag("-q,--quiet", f.quiet, "Print names only");
  f.ls->add_option("--format", f.format, "table or json");
  f.inspect = f.volume->add_subcommand("inspect", "Show volumes as JSON");
  f.inspect->add_option("name", f.names, "Volume names")->required();
  f.rm = f.volume->add_subcommand("rm", "Remove volumes and their data");
  f.rm->add_option("name", f.names, "Volume names")->required();
  f.rm->add_flag("-f,--force", f.force, "Remove even if sandboxes use it");
}

int run_volume_command() {
  auto& f = flags();
  if (!f.volume || !*f.volume) return -1;
  if (*f.create) return create();
  if (*f.ls) return ls();
  if (*f.inspect) return inspect();
  if (*f.rm) return rm();
  return kExitMoatError;
}

}  // namespace moat::cli
