#include "cli/snapshot_commands.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/exec_runner.h"
#include "cli/json_output.h"
#include "moat/json.h"
#include "moat/snapshots.h"

namespace moat::cli {
namespace {

using Json = nlohmann::json;

struct SnapshotFlags {
  CLI::App* snapshot = nullptr;
  CLI::App* create = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* fork = nullptr;
  std::string sandbox;
  std::string name;
  std::vector<std::string> names;
  std::vector<std::string> labels;
  double freeze_timeout_s = 60;
  bool memory = false;
  bool quiet = false;
  std::string format;
  int count = 1;
  std::string name_prefix;
  bool no_start = false;
  bool fork_memory = false;
};

SnapshotFlags& flags() {
  static SnapshotFlags f;
  return f;
}

int fail(const std::string& message) {
  print_error(message);
  return kExitMoatError;
}

Json to_json(const SnapshotInfo& s) { return Json::parse(to_json_text(s)); }

std::string mib_text(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

int create() {
  auto& f = flags();
  SnapshotOptions o;
  for (const auto& l : f.labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0) return fail("bad label \"" + l + "\": expected KEY=VALUE");
    o.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  if (!(f.freeze_timeout_s >= 1 && f.freeze_timeout_s <= 600))
    return fail("--freeze-timeout must be between 1 and 600 seconds");
  o.freeze_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(f.freeze_timeout_s * 1000));
  o.memory = f.memory;
  auto s = create_snapshot(f.sandbox, f.name, o);
  if (!s) return fail(s.error().message);
  std::printf("%s\n", s->id.c_str());
  return 0;
}

int ls() {
  auto& f = flags();
  auto list = list_snapshots();
  if (!list) return fail(list.error().message);
  if (f.format == "json") {
    Json arr = Json::array();
    for (const auto& s : *list) arr.push_back(to_json(s));
    std::printf("%s\n", dump_lossy(arr, 2).c_str());
    return 0;
  }
  if (!f.format.empty() && f.format != "table") return fail("--format " + f.format + ": expected table or json");
  if (f.quiet) {
    for (const auto& s : *list) std::printf("%s\n", s.name.c_str());
    return 0;
  }
  std::printf("%-12s  %-24s  %-24s  %-20s  %-12s  %s\n", "ID", "NAME", "SOURCE", "CREATED", "SIZE", "USED BY");
  for (const auto& s : *list) {
    std::string users;
    for (const auto& u : s.used_by) users += (users.empty() ? "" : ",") + u;
    std::printf("%-12s  %-24s  %-24s  %-20s  %-12s  %s\n", s.id.c_str(), s.name.c_str(), s.source_name.c_str(),
                utc_time_text(s.created_at).c_str(), mib_text(s.allocated_bytes).c_str(),
                users.empty() ? "-" : users.c_str());
  }
  return 0;
}

int inspect() {
  return print_inspected(flags().names, [](const std::string& name) { return inspect_snapshot(name); },
                         [](const SnapshotInfo& s) { return to_json(s); });
}

int rm() {
  int code = 0;
  for (const auto& name : flags().names) {
    if (auto st = remove_snapshot(name); !st) {
      print_error(st.error().message);
      code = kExitMoatError;
      continue;
    }
    std::printf("%s\n", name.c_str());
  }
  return code;
}

int fork() {
  auto& f = flags();
  ForkOptions o;
  o.count = f.count;
  o.name_prefix = f.name_prefix;
  o.start = !f.no_start;
  o.memory = f.fork_memory;
  auto children = fork_sandbox(f.sandbox, o);
  if (!children) return fail(children.error().message);
  for (const auto& c : *children) std::printf("%s\n", c.name.c_str());
  return 0;
}

}  // namespace

void register_snapshot_commands(CLI::App& app) {
  auto& f = flags();
  f.snapshot = app.add_subcommand("snapshot", "Manage disk snapshots of sandboxes");
  f.snapshot->require_subcommand(1);
  f.create = f.snapshot->add_subcommand("create", "Snapshot a sandbox's disk (frozen for the copy if it runs)");
  f.create->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  f.create->add_option("name", f.name, "Snapshot name")->required();
  f.create->add_option("--label", f.labels, "Label KEY=VALUE (repeatable)")->allow_extra_args(false);
  f.create->add_option("--freeze-timeout", f.freeze_timeout_s,
                       "Longest a running sandbox's disk stays frozen for the copy, in seconds (default 60)");
  f.create->add_flag("--memory", f.memory,
                     "Also the running VM's memory and state: sandboxes made from it go on from this moment "
                     "instead of booting");
  f.ls = f.snapshot->add_subcommand("ls", "List snapshots");
  f.ls->add_flag("-q,--quiet", f.quiet, "Print names only");
  f.ls->add_option("--format", f.format, "table or json");
  f.inspect = f.snapshot->add_subcommand("inspect", "Show snapshots as JSON");
  f.inspect->add_option("name", f.names, "Snapshot ids or names")->required();
  f.rm = f.snapshot->add_subcommand("rm", "Remove snapshots no sandbox was made from");
  f.rm->add_option("name", f.names, "Snapshot ids or names")->required();

  f.fork = app.add_subcommand("fork", "Copy a sandbox's disk (consistently, even running) into new sandboxes");
  f.fork->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  f.fork->add_option("-n,--count", f.count, "How many (1 to 64; default 1)");
  f.fork->add_option("--name-prefix", f.name_prefix, "Children are PREFIX-1 ... PREFIX-N (default: SANDBOX-fork)");
  f.fork->add_flag("--no-start", f.no_start, "Create the children without booting them");
  f.fork->add_flag("--memory", f.fork_memory,
                   "Warm fork: save the running VM too, so that the children go on from this moment instead of "
                   "booting, sharing its memory until they write it");
}

int run_snapshot_command() {
  auto& f = flags();
  if (f.fork && *f.fork) return fork();
  if (!f.snapshot || !*f.snapshot) return -1;
  if (*f.create) return create();
  if (*f.ls) return ls();
  if (*f.inspect) return inspect();
  if (*f.rm) return rm();
  return kExitMoatError;
}

}  // namespace moat::cli
