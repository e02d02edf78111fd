// `moat diff` (include/moat/root_changes.h): the sandbox's disks read by the
// confined root reader, a running sandbox's upper copied while frozen first.
#include "moat/root_changes.h"

#include <unistd.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "proto/text.h"
#include "sandbox/lifecycle.h"
#include "sandbox/root_changes.h"
#include "sandbox/root_reader.h"
#include "sandbox/scratch_files.h"
#include "sandbox/upper_copy.h"
#include "util/temp_output.h"
#include "util/write_all.h"

namespace moat {
namespace sandbox {
namespace {

using Json = nlohmann::json;

// A path is at most a few thousand components of 255 bytes; a line longer
// than this is not one the reader writes.
constexpr std::size_t kMaxLine = 4 << 20;
constexpr Duration kReadFreeze = std::chrono::seconds(60);

// The reader's lines, parsed as untrusted input.
class ChangeLines {
 public:
  Status feed(std::string_view bytes) {
    partial_.append(bytes);
    std::size_t start = 0;
    while (true) {
      std::size_t nl = partial_.find('\n', start);
      if (nl == std::string::npos) break;
      MOAT_TRY(line(std::string_view(partial_).substr(start, nl - start)));
      start = nl + 1;
    }
    partial_.erase(0, start);
    if (partial_.size() > kMaxLine) return make_error("the root reader wrote an overlong line", EIO);
    return ok_status();
  }
  Result<std::vector<RootChange>> finish() {
    if (!partial_.empty()) return make_error("the root reader's output ended mid-line", EIO);
    return std::move(changes_);
  }

 private:
  Status line(std::string_view text) {
    auto j = Json::parse(text, nullptr, false);
    auto bad = [] { return make_error("the root reader wrote a line that is not a change", EIO); };
    if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string() || !j.contains("path")) return bad();
    auto path = proto::bytes_from_json(j["path"]);
    std::string kind = j["kind"].get<std::string>();
    if (!path || path->empty() || (*path)[0] != '/') return bad();
    RootChange c;
    if (kind == "A") c.kind = RootChange::Kind::kAdded;
    else if (kind == "C") c.kind = RootChange::Kind::kChanged;
    else if (kind == "D") c.kind = RootChange::Kind::kDeleted;
    else return bad();
    c.path = std::move(*path);
    changes_.push_back(std::move(c));
    return ok_status();
  }

  std::string partial_;
  std::vector<RootChange> changes_;
};

Status check_root(const SandboxRecord& r) {
  MOAT_TRY(upper_disk_of(r));
  if (r.vm.lower_fs != "erofs")
    return make_error("sandbox " + r.info.name + "'s root is an ext4 image: diff, export and commit need an image or "
                      "--rootfs-dir root (an EROFS lower)",
                      EINVAL);
  return ok_status();
}

}  // namespace
}  // namespace sandbox

namespace sandbox {

Status read_sandbox_root(const std::string& id_or_name, const std::string& mode,
                         const std::function<Status(std::string_view)>& on_output, SandboxRecord* record) {
  MOAT_ASSIGN_OR_RETURN(auto m, Manager::open());
  MOAT_ASSIGN_OR_RETURN(auto locked, lock_sandbox(m, id_or_name));
  const SandboxRecord& r = locked.record;
  if (r.state == kStateCreating) return make_error("sandbox " + id_or_name + " is still being created", EBUSY);
  MOAT_TRY(check_root(r));
  if (record) *record = r;
  MOAT_ASSIGN_OR_RETURN(std::string upper, upper_disk_of(r));
  ScratchFiles scratch;
  if (r.info.state == SandboxState::kRunning) {
    // A moment's consistent copy; the guest goes on while it is read.
    std::string copy = m.dir_of(r.info.id) + "/" + mode + "-copy.ext4";
    ::unlink(copy.c_str());  // a dead reader's: we hold the sandbox's lock
    scratch.paths.push_back(copy);
    MOAT_TRY(copy_upper_disk(m, r, copy, kReadFreeze));
    upper = copy;
    locked.lock.release();
  }
  return run_root_reader(mode, upper, r.vm.disks[0].path, on_output);
}

}  // namespace sandbox

Result<std::vector<RootChange>> diff_sandbox(const std::string& id_or_name) {
  sandbox::ChangeLines lines;
  MOAT_TRY(sandbox::read_sandbox_root(id_or_name, "diff", [&](std::string_view bytes) { return lines.feed(bytes); }));
  return lines.finish();
}

Status export_sandbox(const std::string& id_or_name, int fd) {
  return sandbox::read_sandbox_root(id_or_name, "export",
                                    [&](std::string_view bytes) { return write_all(fd, bytes, "write the export"); });
}

Status export_sandbox_to_file(const std::string& id_or_name, const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(auto out, image::TempOutput::create(path));
  MOAT_TRY(export_sandbox(id_or_name, out.fd()));
  return out.commit();
}

}  // namespace moat
