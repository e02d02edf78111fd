// moat_configure_runtime, moat_check_runtime (moat/runtime.h), and where a
// program that loads libmoat finds moat-shim, the guest kernel and the
// default root without being told.
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

#include "capi/handles.h"
#include "moat/json.h"
#include "moat/runtime.h"

using namespace moat::capi;

namespace {

// The C++ library looks for its files beside the running executable
// (<bindir>/moat-shim, <bindir>/../share/moat/). Loaded into python3 or
// node, that is /usr/bin: the files are beside this library instead, in
// the same layout (<prefix>/lib/libmoat.so, <prefix>/bin/moat-shim,
// <prefix>/share/moat/). A field is filled only where the file is there and
// neither the caller nor its MOAT_* variable named one.
std::string library_prefix() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&library_prefix), &info) == 0 || info.dli_fname == nullptr) return "";
  char* real = ::realpath(info.dli_fname, nullptr);
  if (real == nullptr) return "";
  std::string path(real);
  std::free(real);
  std::string dir = path.substr(0, path.rfind('/'));
  return dir.substr(0, dir.rfind('/'));
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void default_field(std::string& field, const char* env, const std::string& candidate) {
  if (!field.empty()) return;
  if (const char* v = std::getenv(env); v && *v) return;
  if (exists(candidate)) field = candidate;
}

void fill_library_defaults(moat::RuntimeOptions& rt) {
  static const std::string prefix = library_prefix();
  if (prefix.empty()) return;
  default_field(rt.shim, "MOAT_SHIM", prefix + "/bin/moat-shim");
  default_field(rt.kernel, "MOAT_KERNEL", prefix + "/share/moat/vmlinux");
  default_field(rt.initramfs, "MOAT_INITRAMFS", prefix + "/share/moat/initramfs.cpio");
  default_field(rt.default_rootfs, "MOAT_DEFAULT_ROOTFS", prefix + "/share/moat/rootfs-busybox");
}

}  // namespace

namespace moat::capi {

void ensure_runtime_defaults() {
  // On the first call rather than at load: the settings are statics of
  // another file, whose construction order against a load-time hook is
  // not defined.
  static std::once_flag once;
  std::call_once(once, [] {
    moat::RuntimeOptions rt = moat::runtime_options();
    fill_library_defaults(rt);
    (void)moat::configure_runtime(rt);
  });
}

}  // namespace moat::capi

extern "C" {

int moat_configure_runtime(const moat_runtime_options* given, moat_error** err) {
  return guarded(err, [&] {
    auto read = read_struct(given, "moat_runtime_options");
    if (!read) return fail(read.error(), err);
    const moat_runtime_options& o = *read;
    moat::RuntimeOptions rt;
    rt.home = text_or_empty(o.home);
    rt.cache_dir = text_or_empty(o.cache_dir);
    rt.qemu = text_or_empty(o.qemu);
    rt.kernel = text_or_empty(o.kernel);
    rt.initramfs = text_or_empty(o.initramfs);
    rt.shim = text_or_empty(o.shim);
    rt.default_rootfs = text_or_empty(o.default_rootfs);
    fill_library_defaults(rt);
    if (o.log != nullptr) {
      auto log = o.log;
      void* user = o.log_user_data;
      rt.log = [log, user](moat::LogLevel level, std::string_view m) {
        log(user, static_cast<moat_log_level>(level), m.data(), m.size());
      };
    }
    return done(moat::configure_runtime(rt), err);
  });
}

int moat_check_runtime(char** report_json, moat_error** err) {
  return guarded(err, [&] { return give_string(moat::to_json_text(moat::check_runtime()), report_json, err); });
}

}  // extern "C"
