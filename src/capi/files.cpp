// Files in the guest through the C ABI (the file methods of moat/sandbox.h).
#include <functional>

#include "capi/handles.h"
#include "moat/json.h"

using namespace moat::capi;

namespace {

moat::Result<moat::WriteFileOptions> write_options_of(const moat_write_file_options* given) {
  MOAT_ASSIGN_OR_RETURN(moat_write_file_options o, read_struct(given, "moat_write_file_options"));
  if (given == nullptr) o.uid = o.gid = -1;
  moat::WriteFileOptions w;
  if (o.mode > 07777) return moat::make_error("write: mode must be at most 07777", EINVAL);
  w.mode = o.mode;
  if (o.uid > UINT32_MAX || o.gid > UINT32_MAX) return moat::make_error("write: uid and gid must fit 32 bits", EINVAL);
  if (o.uid >= 0) w.uid = static_cast<std::uint32_t>(o.uid);
  if (o.gid >= 0) w.gid = static_cast<std::uint32_t>(o.gid);
  w.append = o.append != 0;
  w.exclusive = o.exclusive != 0;
  return w;
}

bool bad_args(const moat_sandbox* sandbox, const char* path) { return sandbox == nullptr || path == nullptr; }

// A caller's C sink as the library's: nonzero from it stops the stream
// (ECANCELED, naming `what`).
std::function<moat::Status(std::string_view)> caller_sink(int (*sink)(void*, const char*, size_t), void* user_data,
                                                          std::string what) {
  return [sink, user_data, what = std::move(what)](std::string_view chunk) -> moat::Status {
    if (sink(user_data, chunk.data(), chunk.size()) != 0)
      return moat::make_error(what + ": stopped by the caller", ECANCELED);
    return moat::ok_status();
  };
}

}  // namespace

extern "C" {

int moat_sandbox_read_file(moat_sandbox* sandbox, const char* guest_path,
                           int (*sink)(void* user_data, const char* data, size_t length), void* user_data,
                           moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || sink == nullptr) return fail(EINVAL, "read file: a handle, a path and a sink are required", err);
    auto st = sandbox->sandbox.read_file(guest_path, caller_sink(sink, user_data, std::string("read ") + guest_path));
    return done(st, err);
  });
}

int moat_sandbox_read_file_to_fd(moat_sandbox* sandbox, const char* guest_path, int fd, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || fd < 0) return fail(EINVAL, "read file: a handle, a path and a descriptor are required", err);
    return done(sandbox->sandbox.read_file(guest_path, fd), err);
  });
}

int moat_sandbox_write_file(moat_sandbox* sandbox, const char* guest_path, const char* data, size_t length,
                            const moat_write_file_options* options, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || (data == nullptr && length != 0)) return fail(EINVAL, "write file: a handle, a path and the data are required", err);
    auto w = write_options_of(options);
    if (!w) return fail(w.error(), err);
    return done(sandbox->sandbox.write_file(guest_path, std::string_view(data ? data : "", length), *w), err);
  });
}

int moat_sandbox_write_file_from_fd(moat_sandbox* sandbox, const char* guest_path, int fd,
                                    const moat_write_file_options* options, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || fd < 0) return fail(EINVAL, "write file: a handle, a path and a descriptor are required", err);
    auto w = write_options_of(options);
    if (!w) return fail(w.error(), err);
    return done(sandbox->sandbox.write_file(guest_path, fd, *w), err);
  });
}

int moat_sandbox_stat(moat_sandbox* sandbox, const char* guest_path, int follow_symlink, char** info_json,
                      moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path)) return fail(EINVAL, "stat: a handle and a path are required", err);
    auto info = sandbox->sandbox.stat(guest_path, follow_symlink != 0);
    if (!info) return fail(info.error(), err);
    return give_string(moat::to_json_text(*info), info_json, err);
  });
}

int moat_sandbox_list_dir(moat_sandbox* sandbox, const char* guest_path, char** entries_json, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path)) return fail(EINVAL, "list: a handle and a path are required", err);
    auto entries = sandbox->sandbox.list_dir(guest_path);
    if (!entries) return fail(entries.error(), err);
    return give_string(moat::to_json_array_text(*entries), entries_json, err);
  });
}

int moat_sandbox_mkdir(moat_sandbox* sandbox, const char* guest_path, int parents, uint32_t mode, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path)) return fail(EINVAL, "mkdir: a handle and a path are required", err);
    return done(sandbox->sandbox.mkdir(guest_path, parents != 0, mode ? mode : 0755), err);
  });
}

int moat_sandbox_remove(moat_sandbox* sandbox, const char* guest_path, int recursive, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path)) return fail(EINVAL, "remove: a handle and a path are required", err);
    return done(sandbox->sandbox.remove(guest_path, recursive != 0), err);
  });
}

int moat_sandbox_rename(moat_sandbox* sandbox, const char* from, const char* to, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, from) || to == nullptr) return fail(EINVAL, "rename: a handle and both paths are required", err);
    return done(sandbox->sandbox.rename(from, to), err);
  });
}

int moat_sandbox_chmod(moat_sandbox* sandbox, const char* guest_path, uint32_t mode, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path)) return fail(EINVAL, "chmod: a handle and a path are required", err);
    return done(sandbox->sandbox.chmod(guest_path, mode), err);
  });
}

int moat_sandbox_copy_in(moat_sandbox* sandbox, const char* host_path, const char* guest_path, int preserve_owner,
                         moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || host_path == nullptr) return fail(EINVAL, "copy in: a handle and both paths are required", err);
    return done(sandbox->sandbox.copy_in(host_path, guest_path, moat::CopyOptions{preserve_owner != 0}), err);
  });
}

int moat_sandbox_copy_out(moat_sandbox* sandbox, const char* guest_path, const char* host_path, int preserve_owner,
                          moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || host_path == nullptr) return fail(EINVAL, "copy out: a handle and both paths are required", err);
    return done(sandbox->sandbox.copy_out(guest_path, host_path, moat::CopyOptions{preserve_owner != 0}), err);
  });
}

int moat_sandbox_read_archive(moat_sandbox* sandbox, const char* guest_path,
                              int (*sink)(void* user_data, const char* data, size_t length), void* user_data,
                              uint64_t* entries, moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_path) || sink == nullptr) return fail(EINVAL, "read archive: a handle, a path and a sink are required", err);
    auto totals =
        sandbox->sandbox.read_archive(guest_path, caller_sink(sink, user_data, std::string("archive of ") + guest_path));
    if (!totals) return fail(totals.error(), err);
    if (entries) *entries = totals->entries;
    return 0;
  });
}

int moat_sandbox_write_archive_from_fd(moat_sandbox* sandbox, const char* guest_dir, int fd, uint64_t* entries,
                                       moat_error** err) {
  return guarded(err, [&] {
    if (bad_args(sandbox, guest_dir) || fd < 0) return fail(EINVAL, "write archive: a handle, a directory and a descriptor are required", err);
    auto totals = sandbox->sandbox.write_archive(guest_dir, fd);
    if (!totals) return fail(totals.error(), err);
    if (entries) *entries = totals->entries;
    return 0;
  });
}

}  // extern "C"
