// The environment moat gives the processes it leaves running for a sandbox:
// the shim and QEMU. They outlive the command that started them and run
// beside untrusted guests, so they get an explicit allow-list instead of the
// caller's whole environment (tokens and keys in it are none of their
// business, and /proc/PID/environ shows them to anyone who can read it).
#pragma once

#include <string>
#include <vector>

namespace moat::vm {

// Whether KEY=VALUE `entry` is passed on: PATH, LANG, LC_*, TZ, TMPDIR, and
// the sanitizer options of `make asan` runs. No MOAT_* variable is needed:
// the CLI resolves them all into the sandbox's config.json, which is all
// the shim reads.
bool allowed_in_child_env(const std::string& entry);

// The allowed entries of `env` (a NULL-terminated array, as environ).
std::vector<std::string> child_env(char** env);

// child_env() as a NULL-terminated array for execve; `storage` keeps the
// strings alive.
std::vector<char*> child_envp(char** env, std::vector<std::string>& storage);

}  // namespace moat::vm
