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

#include "util/base64.h"
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

// moat's own credential file, written by `moat registry login`: the same
// {"auths": {"<registry>": {"auth": base64(user:password)}}} shape as
// Docker's config.json, mode 0600.
std::string moat_auth_path(const std::string& moat_home);

// Credentials for a pull: $MOAT_HOME/auth.json first, then Docker's config
// (`docker_config_path`, "" = default location).
Result<std::optional<Credentials>> stored_credentials(const std::string& registry,
                                                      const std::string& moat_home,
                                                      const std::string& docker_config_path = "");

// Sets (or, with no credentials, removes every key Docker would use for)
// `registry`'s entry in the auth file at `path`, keeping the rest of the
// file. The file is replaced atomically (temp file 0600, fsync, rename).
// Returns whether an entry existed before.
Result<bool> write_auth_entry(const std::string& path, const std::string& registry,
                              const std::optional<Credentials>& credentials);

// The registry part of what a user typed after `login`: "host:port",
// "https://host/", "docker.io" and Docker Hub's legacy URL all work.
Result<std::string> normalize_registry_name(std::string_view text);

// The one base64 of util/base64.h (auth values, Basic credentials).
using moat::base64_decode;
using moat::base64_encode;

}  // namespace moat::image
