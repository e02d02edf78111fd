// The root of a sandbox made from an OCI image: the image's EROFS (pulled
// first if the pull policy says so) and the process defaults its config
// gives (Entrypoint, Cmd, Env, WorkingDir, User).
#pragma once

#include <string>
#include <vector>

#include "moat/sandbox.h"
#include "util/result.h"

namespace moat::sandbox {

struct ImageRoot {
  std::string ref;              // canonical reference
  std::string manifest_digest;
  std::string erofs_path;       // shared, read-only, by every sandbox of the image
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
};

// Looks the image up in the store under `home`, pulling it when the policy
// asks for it (always) or it is missing (missing), makes sure its root is
// built, and records `user` ("sandbox:<id>") as using it, so that neither
// `image rm` nor `prune` deletes it while the sandbox exists. A pull
// reports to o.on_pull_progress.
Result<ImageRoot> resolve_image_root(const std::string& home, const SandboxOptions& o, const std::string& user);

// Records `user` as using the image of `manifest_digest` (which must be in
// the store), so that neither `image rm` nor `prune` deletes it.
Status pin_image(const std::string& home, const std::string& manifest_digest, const std::string& user);

// Forgets `user`; the image may then be pruned.
Status release_image(const std::string& home, const std::string& user);

std::string image_user_of_sandbox(const std::string& id);

// The sandbox's command: the entrypoint (the image's, or the override) plus
// the command (the override, or the image's Cmd when no override is given).
std::vector<std::string> sandbox_command(const ImageRoot& root, const SandboxOptions& o);

}  // namespace moat::sandbox
