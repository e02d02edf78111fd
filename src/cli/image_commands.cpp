#include "cli/image_commands.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "cli/pull_progress.h"
#include "moat/images.h"
#include "moat/json.h"

namespace moat::cli {
namespace {

// moat's own failures exit 125, as everywhere in the CLI (README).
constexpr int kExitFailure = kExitMoatError;

void print_error(const std::string& message) { std::fprintf(stderr, "moat: %s\n", message.c_str()); }

struct ImageFlags {
  CLI::App* image = nullptr;
  CLI::App* pull = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* tag = nullptr;
  CLI::App* fsck = nullptr;
  CLI::App* load = nullptr;
  CLI::App* save = nullptr;
  CLI::App* prune = nullptr;
  CLI::App* registry = nullptr;
  CLI::App* login = nullptr;
  CLI::App* logout = nullptr;
  std::string input;
  std::string output;
  std::string format;
  std::string username;
  bool password_stdin = false;
  std::string ref;
  std::string target;
  std::vector<std::string> refs;
  std::string platform;
  bool insecure = false;
  bool quiet = false;
};

ImageFlags& flags() {
  static ImageFlags f;
  return f;
}

std::string human_size(std::uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string short_digest(const std::string& digest) {
  auto colon = digest.find(':');
  return digest.substr(colon + 1, 12);
}

int fail(const Error& e) {
  print_error(e.message);
  return kExitFailure;
}

int cmd_pull() {
  auto& f = flags();
  PullOptions opts;
  opts.platform = f.platform;
  opts.insecure_registry = f.insecure;
  PullProgressLine line(!f.quiet && ::isatty(STDERR_FILENO));
  opts.on_progress = line.callback();
  auto r = pull_image(f.ref, opts);
  if (!r) return fail(r.error());
  if (!f.quiet) {
    std::fprintf(stderr, "%s: %s, root %s (%s)\n", r->ref.c_str(), r->manifest_digest.c_str(),
                 r->root_path.c_str(), r->built_root ? "built" : "cached");
  }
  std::printf("%s\n", r->digest.c_str());
  return 0;
}

int cmd_ls() {
  auto images = list_images();
  if (!images) return fail(images.error());
  std::printf("%-60s %-14s %-14s %s\n", "REF", "DIGEST", "PLATFORM", "SIZE");
  for (const auto& i : *images) {
    std::printf("%-60s %-14s %-14s %s\n", i.ref.c_str(), short_digest(i.digest).c_str(),
                i.platform.c_str(), human_size(i.size).c_str());
  }
  return 0;
}

int cmd_inspect() {
  auto d = inspect_image(flags().ref);
  if (!d) return fail(d.error());
  // Stored text is not trusted to be UTF-8: replace rather than throw.
  std::cout << nlohmann::json::parse(to_json_text(*d)).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

int cmd_rm() {
  int code = 0;
  for (const auto& r : flags().refs) {
    if (auto st = remove_image(r); !st) {
      print_error(st.error().message);
      code = kExitFailure;
      continue;
    }
    std::printf("%s\n", r.c_str());
  }
  return code;
}

int cmd_tag() {
  auto& f = flags();
  auto rec = tag_image(f.ref, f.target);
  if (!rec) return fail(rec.error().wrap("tag " + f.ref));
  std::printf("%s %s\n", rec->ref.c_str(), rec->digest.c_str());
  return 0;
}

int cmd_fsck() {
  auto reports = check_images(flags().refs);
  if (!reports) return fail(reports.error());
  int code = 0;
  for (const auto& r : *reports) {
    if (r.ok()) {
      std::printf("OK %s %s\n", r.ref.c_str(), r.digest.c_str());
      continue;
    }
    std::string reasons;
    for (const auto& p : r.problems) reasons += (reasons.empty() ? "" : "; ") + p;
    std::printf("BAD %s: %s\n", r.ref.c_str(), reasons.c_str());
    code = kExitFailure;
  }
  return code;
}

int cmd_load() {
  auto& f = flags();
  int fd = STDIN_FILENO;
  if (!f.input.empty() && f.input != "-") {
    fd = ::open(f.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(make_error("open " + f.input + ": " + std::strerror(errno), errno));
  } else if (::isatty(STDIN_FILENO)) {
    return fail(make_error("load: no archive (give -i FILE or pipe one into stdin)", EINVAL));
  }
  auto images = load_images(fd);
  if (fd != STDIN_FILENO) ::close(fd);
  if (!images) return fail(images.error().wrap("load " + (f.input.empty() ? "-" : f.input)));
  for (const auto& i : *images) {
    for (const auto& n : i.names) {
      std::printf("Loaded %s %s\n", n.c_str(), i.digest.c_str());
    }
  }
  return 0;
}

int cmd_save() {
  auto& f = flags();
  auto format = parse_archive_format(f.format);
  if (!format) return fail(format.error());
  if (f.output.empty() || f.output == "-") {
    if (::isatty(STDOUT_FILENO)) {
      return fail(make_error("save: refusing to write an archive to a terminal (use -o FILE)", EINVAL));
    }
    auto st = save_images(f.refs, *format, STDOUT_FILENO);
    if (!st) return fail(st.error().wrap("save"));
    return 0;
  }
  auto st = save_images_to_file(f.refs, *format, f.output);
  if (!st) return fail(st.error().wrap("save"));
  return 0;
}

int cmd_prune() {
  auto r = prune_images();
  if (!r) return fail(r.error());
  std::printf("removed %zu images, %zu blobs, %zu roots, %zu temporary files: %s freed (%llu bytes)\n",
              r->images, r->blobs, r->roots, r->temp_files, human_size(r->bytes).c_str(),
              static_cast<unsigned long long>(r->bytes));
  return 0;
}

// One line from stdin; echo off when it is a terminal.
Result<std::string> read_secret_line(bool prompt, const char* what) {
  bool tty = ::isatty(STDIN_FILENO);
  termios old {};
  if (tty && prompt) {
    std::fprintf(stderr, "%s: ", what);
    std::fflush(stderr);
    if (::tcgetattr(STDIN_FILENO, &old) == 0) {
      termios quiet = old;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
  }
  std::string line;
  char c;
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    line.push_back(c);
    if (line.size() > 4096) return make_error(std::string(what) + " longer than 4096 bytes", EINVAL);
  }
  if (tty && prompt) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fputc('\n', stderr);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

int cmd_login() {
  auto& f = flags();
  // The name is checked before anything is asked for.
  auto registry = registry_name(f.ref);
  if (!registry) return fail(registry.error());
  std::string username = f.username;
  if (username.empty()) {
    if (f.password_stdin || !::isatty(STDIN_FILENO)) {
      return fail(make_error("login: --username is required with --password-stdin", EINVAL));
    }
    std::fprintf(stderr, "Username: ");
    std::fflush(stderr);
    std::getline(std::cin, username);
  }
  if (username.empty() || username.find(':') != std::string::npos) {
    return fail(make_error("login: the username must be non-empty and without ':'", EINVAL));
  }
  if (!f.password_stdin && !::isatty(STDIN_FILENO)) {
    return fail(make_error("login: stdin is not a terminal; use --password-stdin", EINVAL));
  }
  auto password = read_secret_line(!f.password_stdin, "Password");
  if (!password) return fail(password.error());
  auto done = registry_login(*registry, username, *password, f.insecure);
  if (!done) return fail(done.error());
  std::printf("Login Succeeded: %s\n", done->c_str());
  return 0;
}

int cmd_logout() {
  auto done = registry_logout(flags().ref);
  if (!done) return fail(done.error());
  std::printf("Removed login credentials for %s\n", done->c_str());
  return 0;
}

}  // namespace

void register_image_commands(CLI::App& app) {
  auto& f = flags();
  f.image = app.add_subcommand(
      "image", "Manage OCI images (pull, ls, inspect, rm, tag, fsck, load, save, prune)");
  f.image->require_subcommand(1);

  f.pull = f.image->add_subcommand("pull", "Pull an image and build its root filesystem; prints its digest");
  f.pull->add_option("ref", f.ref, "Image reference, e.g. busybox or registry:5000/repo:tag")->required();
  f.pull->add_option("--platform", f.platform, "os/arch[/variant] (default linux/amd64)");
  f.pull->add_flag("--insecure", f.insecure, "Talk plain HTTP to the registry");
  f.pull->add_flag("-q,--quiet", f.quiet, "Print only the digest");

  f.ls = f.image->add_subcommand("ls", "List pulled images");

  f.inspect = f.image->add_subcommand("inspect", "Show an image's metadata as JSON");
  f.inspect->add_option("ref", f.ref, "Image reference")->required();

  f.rm = f.image->add_subcommand("rm", "Remove image references (and data no other image uses)");
  f.rm->add_option("ref", f.refs, "Image references")->required();

  f.tag = f.image->add_subcommand("tag", "Give a pulled image another name");
  f.tag->add_option("source", f.ref, "A pulled reference or an image digest")->required();
  f.tag->add_option("target", f.target, "The new name[:tag]")->required();

  f.fsck = f.image->add_subcommand(
      "fsck", "Re-verify blobs and root filesystems; exits 1 if any image is damaged");
  f.fsck->add_option("ref", f.refs, "Image references (default: every image)");

  f.load = f.image->add_subcommand(
      "load", "Load images from a docker-archive or OCI layout tar (file or stdin)");
  f.load->add_option("-i,--input", f.input, "Archive to read (default: stdin, also '-')");

  f.save = f.image->add_subcommand("save", "Write images to an OCI layout tar or a docker-archive");
  f.save->add_option("-o,--output", f.output, "Archive to write (default: stdout)");
  f.save->add_option("--format", f.format, "oci or docker")->required();
  f.save->add_option("ref", f.refs, "Image references or digests")->required();

  f.prune = f.image->add_subcommand(
      "prune", "Remove unreferenced images, blobs and roots, and stale temporary files");

  f.registry = app.add_subcommand("registry", "Registry credentials (login, logout)");
  f.registry->require_subcommand(1);
  f.login = f.registry->add_subcommand(
      "login", "Check credentials against a registry and store them in $MOAT_HOME/auth.json");
  f.login->add_option("-u,--username", f.username, "User name (prompted on a terminal)");
  f.login->add_flag("--password-stdin", f.password_stdin, "Read the password from stdin");
  f.login->add_flag("--insecure", f.insecure, "Talk plain HTTP to the registry");
  f.login->add_option("registry", f.ref, "Registry host[:port], e.g. docker.io")->required();
  f.logout = f.registry->add_subcommand("logout", "Remove stored credentials for a registry");
  f.logout->add_option("registry", f.ref, "Registry host[:port]")->required();
}

int run_image_command() {
  auto& f = flags();
  if (f.registry && *f.registry) {
    if (*f.login) return cmd_login();
    if (*f.logout) return cmd_logout();
    return kExitMoatError;
  }
  if (!f.image || !*f.image) return -1;
  if (*f.pull) return cmd_pull();
  if (*f.ls) return cmd_ls();
  if (*f.inspect) return cmd_inspect();
  if (*f.rm) return cmd_rm();
  if (*f.tag) return cmd_tag();
  if (*f.fsck) return cmd_fsck();
  if (*f.load) return cmd_load();
  if (*f.save) return cmd_save();
  if (*f.prune) return cmd_prune();
  return kExitMoatError;
}

}  // namespace moat::cli
