#include "cli/root_commands.h"

#include <unistd.h>

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
  CLI::App* exp = nullptr;
  CLI::App* commit = nullptr;
  std::string sandbox;
  std::string ref;
  std::vector<std::string> changes, env;
  std::string workdir, message;
  std::string format;
  std::string output;
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

// To -o FILE (made whole under a temporary name, then renamed: an
// interrupted export leaves no half archive under that name) or stdout.
int export_root() {
  auto& f = flags();
  if (f.output.empty()) {
    if (::isatty(STDOUT_FILENO)) {
      print_error("moat export writes a tar: give -o FILE or redirect stdout");
      return kExitMoatError;
    }
    if (auto st = export_sandbox(f.sandbox, STDOUT_FILENO); !st) {
      print_error(st.error().message);
      return kExitMoatError;
    }
    return 0;
  }
  if (auto st = export_sandbox_to_file(f.sandbox, f.output); !st) {
    print_error(st.error().message);
    return kExitMoatError;
  }
  return 0;
}

int commit() {
  auto& f = flags();
  CommitOptions o;
  o.changes = f.changes;
  o.env = f.env;
  o.workdir = f.workdir;
  o.message = f.message;
  auto img = commit_sandbox(f.sandbox, f.ref, o);
  if (!img) {
    print_error(img.error().message);
    return kExitMoatError;
  }
  std::printf("%s\n", img->manifest_digest.c_str());
  return 0;
}

}  // namespace

void register_root_commands(CLI::App& app) {
  auto& f = flags();
  f.diff = app.add_subcommand("diff", "List what a sandbox changed in its root (A added, C changed, D deleted)");
  f.diff->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  f.diff->add_option("--format", f.format, "table (A/C/D lines) or json");
  f.exp = app.add_subcommand("export", "Write a sandbox's root filesystem as a tar (as the guest sees it)");
  f.exp->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  f.exp->add_option("-o,--output", f.output, "Write to FILE (made whole, then renamed into place) instead of stdout");
  f.commit = app.add_subcommand("commit", "Store a sandbox's changes as a new image: its image's layers plus one");
  f.commit->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  f.commit->add_option("ref", f.ref, "Name of the new image (NAME[:TAG])")->required();
  f.commit->add_option("-c,--change", f.changes,
                       "Apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, LABEL, WORKDIR or USER (repeatable)")
      ->allow_extra_args(false);
  f.commit->add_option("-e,--env", f.env, "Set KEY=VALUE in the image's environment (repeatable)")->allow_extra_args(false);
  f.commit->add_option("-w,--workdir", f.workdir, "The image's working directory");
  f.commit->add_option("-m,--message", f.message, "A comment for the new layer's history entry");
}

int run_root_command() {
  auto& f = flags();
  if (f.diff && *f.diff) return diff();
  if (f.exp && *f.exp) return export_root();
  if (f.commit && *f.commit) return commit();
  return -1;
}

}  // namespace moat::cli
