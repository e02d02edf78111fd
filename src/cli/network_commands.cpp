#include "cli/network_commands.h"

#include <cstdio>
#include <string>

#include "cli/exec_runner.h"
#include "cli/exit_codes.h"
#include "cli/network_flags.h"
#include "moat/sandboxes.h"

namespace moat::cli {
namespace {

struct Flags {
  CLI::App* network = nullptr;
  CLI::App* update = nullptr;
  std::string sandbox;
  NetworkFlags policy;
};

Flags& flags() {
  static Flags f;
  return f;
}

int update() {
  const Flags& f = flags();
  // Bad flags are told as such, whether or not the sandbox exists.
  auto u = network_update_from(f.policy);
  if (!u) return fail(u.error());
  if (auto st = update_sandbox_network(f.sandbox, *u); !st) return fail(st.error());
  std::printf("%s\n", f.sandbox.c_str());
  return 0;
}

}  // namespace

void register_network_commands(CLI::App& app) {
  Flags& f = flags();
  f.network = app.add_subcommand("network", "Change what a sandbox's guest may reach");
  f.network->require_subcommand(1);
  f.update = f.network->add_subcommand(
      "update", "Replace a sandbox's network mode (if given) and all its rules: moat network update SANDBOX [--net MODE] "
                "[--allow RULE]... [--deny RULE]...");
  f.update->add_option("sandbox", f.sandbox, "Sandbox id or name")->required();
  add_network_flags(f.update, f.policy, /*policy_only=*/true);
}

int run_network_command() {
  Flags& f = flags();
  if (!f.network || !*f.network) return -1;
  if (*f.update) return update();
  return kExitMoatError;
}

}  // namespace moat::cli
