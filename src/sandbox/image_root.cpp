#include "sandbox/image_root.h"

#include <cerrno>

#include "image/store/image_pull.h"
#include "image/store/image_store.h"
#include "image/oci/reference.h"
#include "image/store/store_lock.h"

namespace moat::sandbox {
namespace {

Result<image::PullResult> pull(image::ImageStore& store, const SandboxOptions& o) {
  MOAT_ASSIGN_OR_RETURN(auto ref, image::parse_reference(o.image));
  image::PullOptions opts;
  if (!o.platform.empty()) {
    MOAT_ASSIGN_OR_RETURN(opts.platform, image::parse_platform(o.platform));
    opts.require_platform = true;
  }
  opts.registry.insecure = o.insecure_registry;
  opts.on_progress = o.on_pull_progress;
  auto r = image::pull_image(store, ref, opts);
  if (!r) return r.error().wrap("pull " + ref.to_string());
  return r;
}

}  // namespace

std::string image_user_of_sandbox(const std::string& id) { return "sandbox:" + id; }

Status pin_image(const std::string& home, const std::string& manifest_digest, const std::string& user) {
  MOAT_ASSIGN_OR_RETURN(auto store, image::ImageStore::open(home));
  // Shared, as a create's: `rm` and `prune` cannot run between the check and the record.
  MOAT_ASSIGN_OR_RETURN(auto lock, image::StoreLock::acquire(home, image::StoreLock::Mode::kShared));
  auto found = store->resolve(manifest_digest);
  if (!found) return found.error().wrap("image " + manifest_digest);
  return store->db().add_user(found->second.manifest_digest, user);
}

Status release_image(const std::string& home, const std::string& user) {
  MOAT_ASSIGN_OR_RETURN(auto store, image::ImageStore::open(home));
  return store->db().remove_user(user);
}

Result<ImageRoot> resolve_image_root(const std::string& home, const SandboxOptions& o, const std::string& user) {
  MOAT_ASSIGN_OR_RETURN(auto store, image::ImageStore::open(home));
  if (o.pull == PullPolicy::kAlways) MOAT_TRY(pull(*store, o));
  // Shared: `rm` and `prune` (exclusive) cannot remove the image between
  // finding it and recording this sandbox as its user.
  MOAT_ASSIGN_OR_RETURN(auto lock, image::StoreLock::acquire(home, image::StoreLock::Mode::kShared));
  auto found = store->resolve(o.image);
  if (!found && found.error().code == ENOENT && o.pull == PullPolicy::kMissing) {
    lock.release();  // the pull takes the lock itself
    MOAT_TRY(pull(*store, o));
    MOAT_ASSIGN_OR_RETURN(lock, image::StoreLock::acquire(home, image::StoreLock::Mode::kShared));
    found = store->resolve(o.image);
  }
  if (!found) {
    if (found.error().code == ENOENT && o.pull == PullPolicy::kNever)
      return found.error().wrap("image " + o.image + " is not in the local store and --pull is never");
    return found.error();
  }
  auto& [ref, img] = *found;
  MOAT_TRY(store->ensure_root(img));
  MOAT_TRY(store->db().add_user(img.manifest_digest, user));
  MOAT_ASSIGN_OR_RETURN(auto config, store->config_of(img));
  ImageRoot root;
  root.ref = ref.name;
  root.manifest_digest = img.manifest_digest;
  root.erofs_path = store->erofs_path(img.manifest_digest);
  root.entrypoint = config.entrypoint;
  root.cmd = config.cmd;
  root.env = config.env;
  root.workdir = config.working_dir;
  root.user = config.user;
  return root;
}

std::vector<std::string> sandbox_command(const ImageRoot& root, const SandboxOptions& o) {
  std::vector<std::string> argv = o.entrypoint ? *o.entrypoint : root.entrypoint;
  // Docker's rule: overriding the entrypoint drops the image's Cmd too.
  const auto& tail = !o.command.empty() ? o.command : (o.entrypoint ? std::vector<std::string>{} : root.cmd);
  argv.insert(argv.end(), tail.begin(), tail.end());
  return argv;
}

}  // namespace moat::sandbox
