// Files a call makes for its own use (a disk copy, a layer, an archive) and
// removes when it returns, however it returns. A call killed outright leaves
// them where its next run or the sandbox's removal (or, in blobs/incoming,
// `moat image prune`) finds them.
#pragma once

#include <unistd.h>

#include <string>
#include <vector>

namespace moat::sandbox {

struct ScratchFiles {
  std::vector<std::string> paths;
  ScratchFiles() = default;
  ScratchFiles(const ScratchFiles&) = delete;
  ScratchFiles& operator=(const ScratchFiles&) = delete;
  ~ScratchFiles() {
    for (const auto& p : paths) ::unlink(p.c_str());
  }
};

}  // namespace moat::sandbox
