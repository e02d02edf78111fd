// `moat registry login`: checks credentials against a registry before they
// are saved.
//
//   GET /v2/ anonymously
//     200                 -> the registry needs no credentials; accepted
//     401 Basic           -> GET /v2/ again with Basic auth: 200 accepts, 401 rejects
//     401 Bearer          -> GET realm?service=S&account=U with Basic auth (the
//                            token endpoint checks the password): a token
//                            accepts (and GET /v2/ with it must not be 401),
//                            401/403 rejects
// Plain http only with `insecure` (also for a token realm), as for pulls.
#pragma once

#include <string>

#include "image/registry/registry_auth.h"
#include "util/result.h"

namespace moat::image {

struct LoginOptions {
  bool insecure = false;  // plain http to the registry and its token realm
};

// `registry` as normalize_registry_name returns it. An error's message says
// whether the registry rejected the credentials or could not be asked.
Status verify_registry_login(const std::string& registry, const Credentials& credentials,
                             const LoginOptions& options = {});

}  // namespace moat::image
