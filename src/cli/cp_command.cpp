#include "cli/cp_command.h"

#include <cstdio>
#include <optional>
#include <string>

#include "cli/exit_codes.h"
#include "moat/sandbox.h"

namespace moat::cli {
namespace {

// moat's own failures exit 125, as everywhere in the CLI (README).
constexpr int kExitFailure = kExitMoatError;

struct CpFlags {
  CLI::App* cp = nullptr;
  std::string src;
  std::string dst;
  bool archive = false;
};

CpFlags& flags() {
  static CpFlags f;
  return f;
}

struct SandboxPath {
  std::string sandbox;
  std::string path;
};

// "ID:PATH" names a path in a sandbox; anything else is a host path. A host
// path with a colon before its first slash can be written as ./a:b.
std::optional<SandboxPath> parse_sandbox_path(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  auto slash = arg.find('/');
  if (slash != std::string::npos && slash < colon) return std::nullopt;
  return SandboxPath{arg.substr(0, colon), arg.substr(colon + 1)};
}

int fail(const std::string& message) {
  std::fprintf(stderr, "moat: %s\n", message.c_str());
  return kExitFailure;
}

}  // namespace

void register_cp_command(CLI::App& app) {
  auto& f = flags();
  f.cp = app.add_subcommand("cp", "Copy files or directories between the host and a sandbox");
  f.cp->add_option("source", f.src, "HOST_PATH or SANDBOX:PATH")->required();
  f.cp->add_option("destination", f.dst, "SANDBOX:PATH or HOST_PATH")->required();
  f.cp->add_flag("-a,--archive", f.archive, "Keep owners (uid/gid); copying in also keeps setuid/setgid bits");
}

int run_cp_command() {
  auto& f = flags();
  if (!f.cp || !*f.cp) return -1;
  auto from = parse_sandbox_path(f.src);
  auto to = parse_sandbox_path(f.dst);
  if (from.has_value() == to.has_value())
    return fail("cp: exactly one of the two paths must be SANDBOX:PATH");
  const SandboxPath& in_sandbox = from ? *from : *to;
  if (in_sandbox.path.empty()) return fail("cp: empty path in the sandbox");
  auto sb = Sandbox::open(in_sandbox.sandbox);
  if (!sb) return fail(sb.error().message);
  CopyOptions opt;
  opt.preserve_owner = f.archive;
  auto st = from ? sb->copy_out(from->path, f.dst, opt) : sb->copy_in(f.src, to->path, opt);
  if (!st) return fail(st.error().message);
  return 0;
}

}  // namespace moat::cli
