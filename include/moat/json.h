// The JSON forms of moat's objects: what `moat inspect`, `moat ls --json`,
// `moat image inspect`, `moat volume inspect` and `moat stats --json` print,
// and what the C ABI (moat/moat.h) and the SDKs over it hand out. One form
// per object, so a script, an SDK and a person reading the CLI see the same
// names (docs/json.md lists them).
//
// Each returns one compact JSON object as text. Bytes that are not UTF-8
// (argv, paths, labels: moat does not require UTF-8 of them) are shown
// replaced by U+FFFD, so the text always parses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moat/events.h"
#include "moat/images.h"
#include "moat/logs.h"
#include "moat/runtime.h"
#include "moat/sandbox.h"
#include "moat/root_changes.h"
#include "moat/sandboxes.h"
#include "moat/snapshots.h"
#include "moat/stats.h"
#include "moat/volumes.h"

namespace moat {

std::string to_json_text(const SandboxInfo& info);
std::string to_json_text(const NetworkOptions& network);
std::string to_json_text(const ImageSummary& image);
std::string to_json_text(const ImageDetails& image);
std::string to_json_text(const PulledImage& image);
std::string to_json_text(const VolumeInfo& volume);
std::string to_json_text(const SnapshotInfo& snapshot);
std::string to_json_text(const RootChange& change);
std::string to_json_text(const CommittedImage& image);
std::string to_json_text(const SandboxStats& stats);
std::string to_json_text(const FileInfo& info);
std::string to_json_text(const DirEntry& entry);
std::string to_json_text(const ExecEvent& event);
std::string to_json_text(const RuntimeReport& report);
std::string to_json_text(const SandboxEvent& event);
std::string to_json_text(const LoadedImage& image);
std::string to_json_text(const ImageCheck& check);
std::string to_json_text(const PruneReport& report);

// Reading the network's form back, for options given as JSON (the C ABI):
// a missing field is its default ("{}" is the default NetworkOptions), a
// field of the wrong type or range or one not in the form is EINVAL naming
// it. What the rules and addresses say is checked by validate_network().
Result<NetworkOptions> network_options_from_json_text(std::string_view text);
// {"mode": "none", "rules": [{"allow": false, "rule": "..."}]}: "rules"
// required, "mode" optional (unset: kept).
Result<NetworkPolicyUpdate> network_update_from_json_text(std::string_view text);
// The options of a new sandbox (docs/json.md "Sandbox options"), the names
// of SandboxInfo's form: "image", "memory_mib", "idle_timeout_s", ...;
// volumes and tmpfs as their command-line text or as objects. Everything
// the command-line forms check is checked; the rest create checks.
Result<SandboxOptions> sandbox_options_from_json_text(std::string_view text);
// A command (docs/json.md "Exec options"): "argv" required; "env", "cwd",
// "user", "tty", "rows", "cols", "stdin_open", "timeout_s", "rlimits".
// Checked as check_exec_options does.
Result<ExecOptions> exec_options_from_json_text(std::string_view text);

// "[a,b,...]" of the forms above.
template <class T>
std::string to_json_array_text(const std::vector<T>& items) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += to_json_text(item);
  }
  return out + "]";
}

// UTC, ISO 8601 ("2026-11-22T10:04:42Z"); "-" for 0 (never). The times of
// the forms above are written so.
std::string utc_time_text(std::int64_t unix_seconds);

}  // namespace moat
