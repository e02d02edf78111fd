#include "cli/image_commands.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "image/image_fsck.h"
#include "image/image_pull.h"
#include "image/image_store.h"
#include "store/moat_home.h"

namespace moat::cli {
namespace {

constexpr int kExitFailure = 1;

void print_error(const std::string& message) { std::fprintf(stderr, "moat: %s\n", message.c_str()); }

struct ImageFlags {
  CLI::App* image = nullptr;
  CLI::App* pull = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* tag = nullptr;
  CLI::App* fsck = nullptr;
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

Result<std::unique_ptr<image::ImageStore>> open_store() {
  MOAT_ASSIGN_OR_RETURN(std::string home, store::moat_home());
  return image::ImageStore::open(home);
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
  auto ref = image::parse_reference(f.ref);
  if (!ref) return fail(ref.error());
  image::PullOptions opts;
  if (!f.platform.empty()) {
    auto p = image::parse_platform(f.platform);
    if (!p) return fail(p.error().wrap("--platform"));
    opts.platform = *p;
    opts.require_platform = true;
  }
  opts.registry.insecure = f.insecure;
  opts.progress = !f.quiet && ::isatty(STDERR_FILENO);
  auto store = open_store();
  if (!store) return fail(store.error());
  auto r = image::pull_image(**store, *ref, opts);
  if (!r) return fail(r.error().wrap("pull " + ref->to_string()));
  if (!f.quiet) {
    std::fprintf(stderr, "%s: %s, root %s (%s)\n", r->ref.c_str(), r->manifest_digest.c_str(),
                 r->erofs_path.c_str(), r->built_root ? "built" : "cached");
  }
  std::printf("%s\n", r->digest.c_str());
  return 0;
}

int cmd_ls() {
  auto store = open_store();
  if (!store) return fail(store.error());
  auto images = (*store)->list();
  if (!images) return fail(images.error());
  std::printf("%-60s %-14s %-14s %s\n", "REF", "DIGEST", "PLATFORM", "SIZE");
  for (const auto& i : *images) {
    std::printf("%-60s %-14s %-14s %s\n", i.ref.c_str(), short_digest(i.digest).c_str(),
                i.platform.c_str(), human_size(i.size).c_str());
  }
  return 0;
}

int cmd_inspect() {
  auto store = open_store();
  if (!store) return fail(store.error());
  auto j = (*store)->inspect(flags().ref);
  if (!j) return fail(j.error());
  std::cout << j->dump(2) << "\n";
  return 0;
}

int cmd_rm() {
  auto store = open_store();
  if (!store) return fail(store.error());
  int code = 0;
  for (const auto& r : flags().refs) {
    if (auto st = (*store)->remove(r); !st) {
      print_error(st.error().message);
      code = kExitFailure;
      continue;
    }
    std::printf("%s\n", r.c_str());
  }
  return code;
}

int cmd_tag() {
  auto store = open_store();
  if (!store) return fail(store.error());
  auto& f = flags();
  auto rec = (*store)->tag(f.ref, f.target);
  if (!rec) return fail(rec.error().wrap("tag " + f.ref));
  std::printf("%s %s\n", rec->name.c_str(), rec->digest.c_str());
  return 0;
}

int cmd_fsck() {
  auto store = open_store();
  if (!store) return fail(store.error());
  auto reports = image::fsck_images(**store, flags().refs);
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

}  // namespace

void register_image_commands(CLI::App& app) {
  auto& f = flags();
  f.image = app.add_subcommand("image", "Manage OCI images (pull, ls, inspect, rm, tag, fsck)");
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
}

int run_image_command() {
  auto& f = flags();
  if (!f.image || !*f.image) return -1;
  if (*f.pull) return cmd_pull();
  if (*f.ls) return cmd_ls();
  if (*f.inspect) return cmd_inspect();
  if (*f.rm) return cmd_rm();
  if (*f.tag) return cmd_tag();
  if (*f.fsck) return cmd_fsck();
  return 2;
}

}  // namespace moat::cli
