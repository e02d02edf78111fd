// `moat diff` (include/moat/root_changes.h): the sandbox's disks read by the
// confined root reader, a running sandbox's upper copied while frozen first.
#include "moat/root_changes.h"

#include <unistd.h>

#include <cerrno>

#include "sandbox/change_lines.h"
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

constexpr Duration kReadFreeze = std::chrono::seconds(60);

Status check_root(const SandboxRecord& r) {
  MOAT_TRY(upper_disk_of(r));
  if (r.vm.lower_fs != "erofs")
    return make_error("sandbox " + r.info.name + "'s root is an ext4 image: diff, export and commit need an image or "
                      "--rootfs-dir root (an EROFS lower)",
                      EINVAL);
  return ok_status();
}

}  // namespace

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
