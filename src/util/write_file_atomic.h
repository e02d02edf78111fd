// Replacing a small file whole (credentials, a sandbox's secrets), so a
// reader sees the old bytes or the new ones and never a mix.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "util/result.h"

namespace moat {

// Writes `bytes` to a new file beside `path` (the same directory, so the
// rename cannot cross filesystems), fsyncs it and renames it over `path`.
// The file's mode is `mode` exactly, whatever the umask; it is created 0600
// and changed before anything is written, so a secret is never readable by
// others even for a moment. On failure the temporary file is removed and
// `path` is as it was. The directory is not synced: after a crash the
// rename may be lost and the old file remain. Errors name the path and the
// step that failed ("creating temporary file for PATH: ...").
Status write_file_atomic(const std::string& path, std::string_view bytes, mode_t mode);

}  // namespace moat
