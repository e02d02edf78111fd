// Registry authentication pieces: WWW-Authenticate challenges, credentials
// from Docker's config file, and base64.
//
// The token flow itself (a 401 with a Bearer challenge -> GET realm with
// service and scope -> "Authorization: Bearer <token>") lives in the
// registry client; this file only parses and looks things up.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace moat::image {

struct AuthChallenge {
  std::string scheme;                        // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lowercased: realm, service, scope
};

// Parses a WWW-Authenticate value: one or more challenges, each a scheme
// followed by comma-separated name=value or name="quoted value" pairs.
Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view value);

struct Credentials {
  std::string username;
  std::string password;
};

// Credentials for `registry` ("docker.io", "localhost:5000") from a Docker
// config file (default: $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json). No file or no entry is not an error. Only the
// inline "auths" entries are read; credential helpers are not run.
Result<std::optional<Credentials>> docker_config_credentials(const std::string& registry,
                                                             const std::string& config_path = "");

std::string default_docker_config_path();

std::string base64_encode(std::string_view data);
Result<std::string> base64_decode(std::string_view text);

}  // namespace moat::image
