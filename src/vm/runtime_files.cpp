#include "vm/runtime_files.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "util/runtime_settings.h"
#include "util/subprocess.h"
#include "vm/qemu_command.h"

namespace moat::vm {
namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string share_path(const std::string& name) {
  return executable_dir() + "/../share/moat/" + name;
}

std::string canonical(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf)) return buf;
  return p;
}

Result<std::string> find_file(const std::string& configured, const char* env, const std::string& fallback,
                              const std::string& what, const std::string& hint) {
  if (!configured.empty()) {
    if (!is_file(configured)) return make_error(what + " " + configured + " (from the runtime options) does not exist", ENOENT);
    return canonical(configured);
  }
  if (const char* v = std::getenv(env); v && *v) {
    if (!is_file(v)) return make_error(what + " " + v + " (from $" + env + ") does not exist", ENOENT);
    return canonical(v);
  }
  if (is_file(fallback)) return canonical(fallback);
  return make_error(what + " not found at " + fallback + " (" + hint + ", or set $" + env + ")", ENOENT);
}

}  // namespace

std::string executable_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<std::size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

Result<std::string> find_qemu() {
  if (std::string q = util::configured_qemu(); !q.empty()) {
    if (::access(q.c_str(), X_OK) != 0) return make_error("QEMU " + q + " (from the runtime options) is not executable", EACCES);
    return q;
  }
  if (const char* v = std::getenv("MOAT_QEMU"); v && *v) {
    if (::access(v, X_OK) != 0) return make_error(std::string("QEMU ") + v + " (from $MOAT_QEMU) is not executable", EACCES);
    return std::string(v);
  }
  if (std::string found = find_on_path("qemu-system-x86_64"); !found.empty()) return found;
  return make_error("qemu-system-x86_64 not found on PATH (apt-get install qemu-system-x86, or set $MOAT_QEMU)", ENOENT);
}

Result<std::string> find_kernel() {
  return find_file(util::configured_kernel(), "MOAT_KERNEL", share_path("vmlinux"), "guest kernel", "run `make kernel`");
}

Result<std::string> find_initramfs() {
  return find_file(util::configured_initramfs(), "MOAT_INITRAMFS", share_path("initramfs.cpio"), "initramfs", "run `make build`");
}

Result<std::string> find_shim() {
  return find_file(util::configured_shim(), "MOAT_SHIM", executable_dir() + "/moat-shim", "moat-shim", "run `make build`");
}

Result<std::string> find_read_only_ram_preload() {
  return find_file("", "MOAT_READ_ONLY_RAM_PRELOAD", executable_dir() + "/../lib/moat/moat-read-only-ram.so",
                   "moat-read-only-ram.so", "run `make build`");
}

Result<std::string> find_default_rootfs() {
  std::string fallback = share_path("rootfs-busybox");
  if (std::string c = util::configured_default_rootfs(); !c.empty()) fallback = c;
  else if (const char* v = std::getenv("MOAT_DEFAULT_ROOTFS"); v && *v) fallback = v;
  if (!is_dir(fallback)) return make_error("default root filesystem " + fallback + " not found (run `make rootfs`)", ENOENT);
  return canonical(fallback);
}

std::string qemu_version(const std::string& qemu) {
  auto run = run_command({qemu, "--version"});
  if (!run || run->output.empty()) return "unknown";
  std::string line = run->output.substr(0, std::min(run->output.find('\n'), std::size_t{255}));
  while (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string qemu_sandbox_refusal(const std::string& qemu) {
  // Options are read in order: -sandbox is checked (and refused by a QEMU
  // without seccomp) before -version ends the run.
  auto run = run_command({qemu, "-sandbox", kQemuSandboxOptions, "-version"});
  if (!run) return "cannot run " + qemu + ": " + run.error().message;
  if (run->exit_code == 0) return "";
  std::string out = run->output.substr(0, 4096);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.empty() ? "QEMU refused -sandbox " + std::string(kQemuSandboxOptions) : out;
}

}  // namespace moat::vm
