#include "util/runtime_settings.h"

#include <cerrno>
#include <mutex>

namespace moat {
namespace {

// Copied out under the lock, so a configure_runtime() racing a call never
// hands that call a half-written string.
std::mutex g_mu;
RuntimeOptions g_options;

template <class Field>
std::string read(Field field) {
  std::lock_guard lk(g_mu);
  return g_options.*field;
}

}  // namespace

Status configure_runtime(const RuntimeOptions& options) {
  const std::pair<const char*, const std::string*> paths[] = {
      {"home", &options.home},       {"cache_dir", &options.cache_dir},
      {"qemu", &options.qemu},       {"kernel", &options.kernel},
      {"initramfs", &options.initramfs}, {"shim", &options.shim},
      {"default_rootfs", &options.default_rootfs}};
  for (const auto& [name, value] : paths) {
    if (!value->empty() && (*value)[0] != '/')
      return make_error(std::string("runtime option ") + name + " \"" + *value + "\": must be an absolute path", EINVAL);
  }
  std::lock_guard lk(g_mu);
  g_options = options;
  return ok_status();
}

RuntimeOptions runtime_options() {
  std::lock_guard lk(g_mu);
  return g_options;
}

namespace util {

std::string configured_home() { return read(&RuntimeOptions::home); }
std::string configured_cache_dir() { return read(&RuntimeOptions::cache_dir); }
std::string configured_qemu() { return read(&RuntimeOptions::qemu); }
std::string configured_kernel() { return read(&RuntimeOptions::kernel); }
std::string configured_initramfs() { return read(&RuntimeOptions::initramfs); }
std::string configured_shim() { return read(&RuntimeOptions::shim); }
std::string configured_default_rootfs() { return read(&RuntimeOptions::default_rootfs); }

void runtime_log(LogLevel level, std::string_view message) {
  std::function<void(LogLevel, std::string_view)> sink;
  {
    std::lock_guard lk(g_mu);
    sink = g_options.log;
  }
  if (sink) sink(level, message);  // outside the lock: the sink may call back
}

}  // namespace util
}  // namespace moat
