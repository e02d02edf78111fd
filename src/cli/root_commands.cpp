#include "cli/root_commands.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/exec_runner.h"
#include "cli/json_output.h"
#include "moat/json.h"
#include "moat/root_changes.h"

namespace moat::cli {
namespace {

using Json = nlohmann::json;

struct RootFlags {
  CLI::App* diff = nullptr;
  std::string sandbox;
  std::string format;
};

RootFlags& flags() {
  static RootFlags f;
  return f;
}

int diff() {
  auto& f = flags();
  if (!f.format.empty() && f.format != "table" && f.format != "json") {
    print_error("--format " + f.format + ": expected table or json");
    return kExitMoatError;
  }
  auto changes = diff_sandbox(f.sandbox);
  if (!changes) {
    print_error(changes.error().message);
    return kExitMoatError;
  }
  if (f.format == "json") {
    Json arr = Json::array();
    for (const auto& c : *changes) arr.push_back(Json::parse(to_json_text(c)));
    std::printf("%s\n", dump_lossy(arr, 2).c_str());
    return 0;
  }
  for (const auto& c : *changes) {
    std::string line = std::string(1, to_char(c.kind)) + " " + c.path + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  return 0;
}

}  // namespace

void register_root_commands(CLI::App& app) {
  auto& f = flags();
  f.diff = app.add_subcommand("diff", "List what a sandbox changed in its root (A added, C changed, D deleted)");
  f.diff->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  f.diff->add_option("--format", f.format, "table (A/C/D lines) or json");
}

int run_root_command() {
  auto& f = flags();
  if (f.diff && *f.diff) return diff();
  return -1;
}

}  // namespace moat::cli
