// The host's half of `copy_in` / `copy_out`: a tar stream of a host path
// (libarchive, pax) and the extraction of a tar stream that a guest sent.
// Extraction treats the archive as hostile: every entry is created through a
// TreeWriter beneath the destination directory (no absolute names, no "..",
// no following symlinks the archive planted, hardlinks only to entries inside
// it), and only under the one top-level name the host asked for. It is also
// bounded and all-or-nothing: entries deeper than 1024 directories or with
// names longer than PATH_MAX are refused, files appear under their names
// only when complete, directories that existed keep their mode and owner,
// no mode from the archive makes a host file setuid, setgid or writable by
// group or others, and a failed extraction removes what it created and puts
// back what it replaced.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::sandbox {

using ChunkSink = std::function<Status(std::string_view)>;
// Next chunk of a stream; nullopt at its end.
using ChunkSource = std::function<Result<std::optional<std::string>>()>;

struct HostTarOptions {
  // Archive: keep the host's uid/gid (otherwise entries are owned by 0:0).
  // Extract: apply the archive's uid/gid (never its setuid/setgid bits).
  bool preserve_owner = false;
};

struct TarTotals {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
};

// Streams `host_path` (never following symlinks below it) as a tar whose
// top-level entry is `top_name`.
Result<TarTotals> write_host_tar(const std::string& host_path, const std::string& top_name,
                                 const HostTarOptions& options, const ChunkSink& sink);

// Extracts the tar read from `source` beneath the directory `dest_dir`;
// every entry must lie under `top_name`. `source` is read to its end (past
// the archive's end marker): an error there fails the extraction too.
Result<TarTotals> extract_host_tar(const std::string& dest_dir, const std::string& top_name,
                                   const HostTarOptions& options, const ChunkSource& source);

}  // namespace moat::sandbox
