// A sandbox's root read from its disks through the C ABI
// (moat/root_changes.h): diff, export, commit.
#include "capi/handles.h"
#include "moat/json.h"
#include "moat/root_changes.h"

using namespace moat::capi;

extern "C" {

int moat_sandbox_diff(const char* id_or_name, char** changes_json, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "diff: no sandbox given", err);
    auto changes = moat::diff_sandbox(id_or_name);
    if (!changes) return fail(changes.error(), err);
    return give_string(moat::to_json_array_text(*changes), changes_json, err);
  });
}

int moat_sandbox_export_to_fd(const char* id_or_name, int fd, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr || fd < 0) return fail(EINVAL, "export: no sandbox or descriptor given", err);
    return done(moat::export_sandbox(id_or_name, fd), err);
  });
}

int moat_sandbox_commit(const char* id_or_name, const char* ref, const moat_commit_options* given, char** image_json,
                        moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr || ref == nullptr) return fail(EINVAL, "commit: no sandbox or reference given", err);
    moat::CommitOptions o;
    if (given != nullptr) {
      auto read = read_struct(given, "moat_commit_options");
      if (!read) return fail(read.error(), err);
      o.changes = string_list(read->changes);
      o.env = string_list(read->env);
      o.workdir = text_or_empty(read->workdir);
      o.message = text_or_empty(read->message);
    }
    auto img = moat::commit_sandbox(id_or_name, ref, o);
    if (!img) return fail(img.error(), err);
    return give_string(moat::to_json_text(*img), image_json, err);
  });
}

}  // extern "C"
