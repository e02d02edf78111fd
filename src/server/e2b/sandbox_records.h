// The E2B sandboxes' records on disk ($MOAT_HOME/e2b/sandboxes/ID.json,
// mode 0600: they hold access tokens), so a restarted `moat serve --e2b`
// still lists, serves and times out the sandboxes an earlier one made. Each
// is rewritten whole (write_file_atomic) when it changes; a file that does
// not read back as a record is skipped and named, never trusted in part.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moat/result.h"
#include "server/e2b/e2b_sandbox.h"

namespace moat::server::e2b {

std::string record_json(const E2bSandbox& sandbox);
Result<E2bSandbox> record_from_json(std::string_view text);

class SandboxRecords {
 public:
  static constexpr std::size_t kMaxRecordBytes = 256 << 10;

  // Makes `dir` (0700) if missing.
  static Result<SandboxRecords> open(const std::string& dir);

  Status save(const E2bSandbox& sandbox) const;
  void remove(const std::string& id) const;
  // Every record that reads back; what could not be read goes to `problems`.
  std::vector<E2bSandbox> load(std::vector<std::string>& problems) const;

 private:
  explicit SandboxRecords(std::string dir) : dir_(std::move(dir)) {}
  std::string path_of(const std::string& id) const { return dir_ + "/" + id + ".json"; }
  std::string dir_;
};

// moat's sandbox ids as file names: [a-z0-9], 1 to 64 characters.
bool plain_id(std::string_view id);

}  // namespace moat::server::e2b
