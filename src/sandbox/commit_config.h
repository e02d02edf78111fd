// The new image's config for `moat commit`: the base image's config with the
// new layer's diff_id and history entry, and the caller's changes
// (Dockerfile instructions as `docker commit --change` takes them, --env,
// --workdir) applied to its "config" object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/root_changes.h"

namespace moat::sandbox {

// Applies one instruction ("CMD [\"python3\"]", "ENV A=1 B=2", ...) to the
// config object `config` (the image config's "config" member). EINVAL with
// the reason for an instruction it does not know or cannot read.
Status apply_change(const std::string& instruction, nlohmann::json& config);

// The whole new config: `base` (the base image's config JSON) plus the layer
// and the options. `created` is RFC 3339 UTC.
Result<nlohmann::json> commit_config(const nlohmann::json& base, const std::string& diff_id,
                                     const CommitOptions& options, const std::string& created,
                                     const std::string& created_by);

}  // namespace moat::sandbox
