#include "jail/syscall_filter.h"

#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

namespace moat::jail {
namespace {

// What the trap's handler writes: fixed storage, filled before the filter
// is loaded (a handler may not allocate).
char g_who[128];

// Appends the decimal `value` at `out`; returns the end.
char* put_number(char* out, long value) {
  char digits[24];
  int n = 0;
  unsigned long v = value < 0 ? static_cast<unsigned long>(-value) : static_cast<unsigned long>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (value < 0) *out++ = '-';
  while (n > 0) *out++ = digits[--n];
  return out;
}

char* put_text(char* out, const char* end, const char* text) {
  while (*text != '\0' && out < end) *out++ = *text++;
  return out;
}

void on_trapped_call(int, siginfo_t* info, void*) {
  char line[256];
  char* end = line + sizeof line - 32;
  char* p = put_text(line, end, g_who);
  p = put_text(p, end, ": system call ");
  p = put_number(p, info->si_syscall);
  p = put_text(p, end, " is outside the process's seccomp filter; ending the process\n");
  ssize_t w = ::write(STDERR_FILENO, line, static_cast<std::size_t>(p - line));
  (void)w;
  ::_exit(kFilterViolationExit);
}

struct ContextFree {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextFree>;

Error seccomp_error(const std::string& what, int rc) { return errno_error("seccomp: " + what, -rc); }

#if defined(MOAT_SANITIZED)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

Status add_rules(scmp_filter_ctx ctx, const SyscallFilter& filter) {
  for (const auto& name : filter.allowed) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not a call of this architecture
    if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc != 0) return seccomp_error("allowing " + name, rc);
  }
  // Threads, never processes.
  if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
      rc != 0)
    return seccomp_error("allowing clone for threads", rc);
  if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc != 0)
    return seccomp_error("refusing clone3", rc);
  // Signals to its own threads only (raise, abort): never to another process.
  if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                                SCMP_A0_32(SCMP_CMP_EQ, static_cast<std::uint32_t>(::getpid())));
      rc != 0)
    return seccomp_error("allowing tgkill", rc);
  for (unsigned long request : filter.allowed_ioctls) {
    if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1_64(SCMP_CMP_EQ, request));
        rc != 0)
      return seccomp_error("allowing ioctl " + std::to_string(request), rc);
  }
  return ok_status();
}

}  // namespace

bool syscall_filters_enforce() { return !kSanitized; }

Status install_syscall_filter(const SyscallFilter& filter) {
  std::snprintf(g_who, sizeof g_who, "%s", filter.who.c_str());
  struct sigaction sa {};
  sa.sa_sigaction = on_trapped_call;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGSYS, &sa, nullptr) != 0) return errno_error("installing the SIGSYS handler");
  // Every thread must take the trap's signal (a blocked SIGSYS from a
  // filter kills the process instead, without the line).
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  ::pthread_sigmask(SIG_UNBLOCK, &sys, nullptr);

  Context ctx(seccomp_init(kSanitized ? SCMP_ACT_ALLOW : SCMP_ACT_TRAP));
  if (!ctx) return make_error("seccomp: cannot make a filter", ENOMEM);
  // no_new_privs: set by the filter's load (and required by the kernel).
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1); rc != 0)
    return seccomp_error("setting no_new_privs", rc);
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0)
    return seccomp_error("asking for every thread", rc);
  if (!kSanitized) MOAT_TRY(add_rules(ctx.get(), filter));
  if (int rc = seccomp_load(ctx.get()); rc != 0) return seccomp_error("loading the filter", rc);
  return ok_status();
}

}  // namespace moat::jail
