// Where libmoat keeps its state and finds what a VM needs, and where its
// messages go: one set of settings per process, given by the front end
// (CLI, server, SDK) instead of environment variables read deep inside.
//
//   moat::RuntimeOptions rt;
//   rt.home = "/srv/moat";                 // sandboxes, images, volumes
//   rt.log = [](moat::LogLevel, std::string_view m) { syslog(LOG_INFO, "%.*s", ...); };
//   moat::configure_runtime(rt);           // every call after this uses it
//
// An empty field takes its default: the MOAT_* environment variable named
// beside it, else the built-in place. So a program that never calls
// configure_runtime() behaves as the CLI does.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "moat/result.h"

namespace moat {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

struct RuntimeOptions {
  std::string home;            // $MOAT_HOME, else $XDG_DATA_HOME/moat, else ~/.local/share/moat
  std::string cache_dir;       // $MOAT_CACHE_DIR, else <home>/cache (derived data only: may be shared)
  std::string qemu;            // $MOAT_QEMU, else qemu-system-x86_64 on PATH
  std::string kernel;          // $MOAT_KERNEL, else <bindir>/../share/moat/vmlinux
  std::string initramfs;       // $MOAT_INITRAMFS, else <bindir>/../share/moat/initramfs.cpio
  std::string shim;            // $MOAT_SHIM, else <bindir>/moat-shim
  std::string default_rootfs;  // $MOAT_DEFAULT_ROOTFS, else <bindir>/../share/moat/rootfs-busybox
  // What libmoat has to say that is not an error of the call at hand (a
  // sandbox found crashed, a leftover directory removed). Default: dropped.
  std::function<void(LogLevel, std::string_view)> log;
};

// Makes `options` this process's settings. Paths must be absolute (EINVAL
// otherwise). Calls already running keep what they started with; it is meant
// to be called once, before the first sandbox or image call.
Status configure_runtime(const RuntimeOptions& options);
// The settings as configured (empty fields: not set, defaults apply).
RuntimeOptions runtime_options();
// The state directory in effect (configured, $MOAT_HOME or the default),
// made (mode 0700) if it is missing.
Result<std::string> home_directory();

// ---- Is this host ready to run sandboxes? (`moat doctor`) ----

struct RuntimeCheck {
  std::string what;     // "qemu", "kernel", "initramfs", "jail", "filters", "cgroup", "shim", "default rootfs", "state dir"
  bool ok = false;
  bool required = true;  // false: only some sandboxes need it
  std::string value;    // the path found, or why not
  std::string detail;   // e.g. QEMU's version, a file's size
};

struct KvmProbe {
  bool device_exists = false;
  bool device_openable = false;
  int api_version = -1;
  bool module_intel = false;
  bool module_amd = false;
  bool module_pvm = false;
};

struct RuntimeReport {
  std::vector<RuntimeCheck> checks;
  KvmProbe kvm;
  bool accel_ok = false;
  std::string accel;         // "kvm" or "tcg" when accel_ok
  std::string accel_reason;  // why that one, or why none
  // Every required check passed and an accelerator was chosen.
  bool ready() const;
};

RuntimeReport check_runtime();

}  // namespace moat
