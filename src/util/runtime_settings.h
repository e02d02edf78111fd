// The process's runtime settings (include/moat/runtime.h) as the layers
// below the API read them: store (home, cache) and vm (QEMU, kernel, ...)
// ask here first and fall back to their environment defaults.
#pragma once

#include <string>
#include <string_view>

#include "moat/runtime.h"

namespace moat::util {

// One field of the configured settings; empty when not configured.
std::string configured_home();
std::string configured_cache_dir();
std::string configured_qemu();
std::string configured_kernel();
std::string configured_initramfs();
std::string configured_shim();
std::string configured_default_rootfs();

// Hands a message to the configured log sink, if any.
void runtime_log(LogLevel level, std::string_view message);

}  // namespace moat::util
