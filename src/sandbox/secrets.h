// A new sandbox's secrets (moat/sandbox.h, docs/tls.md): checked, given
// placeholders, and turned into the file its shim reads and the guest's
// environment.
#pragma once

#include <string>
#include <vector>

#include "moat/sandbox.h"
#include "shim_contract/secrets_file.h"

namespace moat::sandbox {

// EINVAL with the reason for a bad name, value or host, or two secrets of
// one name.
Status validate_secrets(const std::vector<Secret>& secrets);

struct PreparedSecrets {
  shim::SecretsFile file;        // for the sandbox's directory
  std::vector<std::string> env;  // NAME=<placeholder>, for every command
};
// A random placeholder per secret ("moat-secret-" and 32 hex digits), the
// hosts in lower case.
Result<PreparedSecrets> prepare_secrets(const std::vector<Secret>& secrets, SecretViolation on_violation);

}  // namespace moat::sandbox
