#include "shim/root_reader_process.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "image/erofs/erofs_reader.h"
#include "jail/privileges.h"
#include "jail/syscall_filter.h"
#include "proto/text.h"
#include "root_view/root_diff.h"
#include "root_view/root_export.h"
#include "root_view/upper_layer.h"
#include "shim/syscall_lists.h"

namespace moat::shim {
namespace {

struct Args {
  std::string mode;
  int upper_fd = -1;
  int lower_fd = -1;
};

Result<Args> parse(int argc, char** argv) {
  Args a;
  if (argc < 1) return make_error("--read-root needs a mode (diff)", EINVAL);
  a.mode = argv[0];
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--upper-fd") a.upper_fd = v;
    else if (k == "--lower-fd") a.lower_fd = v;
    else return make_error("unknown argument " + k, EINVAL);
  }
  if (a.mode != "diff" && a.mode != "export" && a.mode != "layer")
    return make_error("unknown --read-root mode " + a.mode, EINVAL);
  if (a.upper_fd < 0 || a.lower_fd < 0) return make_error("--read-root needs --upper-fd and --lower-fd", EINVAL);
  return a;
}

// After the disks are open: nothing of root's is left, and no call that
// could open, make or run anything.
Status confine() {
  if (int err = jail::seal_process(); err != 0) return errno_error("seal the process", err);
  if (::geteuid() == 0) {
    if (int err = jail::keep_only_capabilities(nullptr, 0); err != 0) return errno_error("drop capabilities", err);
  }
  return jail::install_syscall_filter(root_reader_syscall_filter());
}

Status write_line(const std::string& line) {
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fputc('\n', stdout) == EOF)
    return errno_error("write the answer");
  return ok_status();
}

Status run(const Args& a) {
  // Of no use once its caller is gone (a commit killed half-way): it dies
  // with it rather than read a disk for nobody. Had the caller died before
  // this line, the first write to its pipe ends the reader instead. The
  // signal follows the spawning thread, which waits for the reader
  // (sandbox/root_reader.cpp), so a server's request thread is no risk.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  MOAT_ASSIGN_OR_RETURN(auto lower, image::ErofsReader::from_fd(UniqueFd(a.lower_fd)));
  MOAT_ASSIGN_OR_RETURN(auto upper, root_view::Ext4TreeReader::open("/proc/self/fd/" + std::to_string(a.upper_fd)));
  // Names are bytes: a UTF-8 locale lets libarchive write them without iconv
  // (which would open its modules, a call the filter refuses); one that is
  // not UTF-8 is written as binary (pax hdrcharset) for that entry alone.
  if (!std::setlocale(LC_ALL, "C.UTF-8")) return make_error("the C.UTF-8 locale is missing", ENOENT);
  MOAT_TRY(confine());
  // A disk that never booted has no /upper yet: the root is the lower alone.
  MOAT_ASSIGN_OR_RETURN(auto upper_dir, upper.lookup(upper.root(), "upper"));
  root_view::OverlayView view(upper, upper_dir, lower);
  if (a.mode == "export") return root_view::export_root(view, STDOUT_FILENO);
  if (a.mode == "layer") return root_view::write_upper_layer(view, STDOUT_FILENO);
  MOAT_ASSIGN_OR_RETURN(auto changes, root_view::diff_root(view));
  for (const auto& c : changes) {
    nlohmann::json j = {{"kind", std::string(1, c.kind)}, {"path", proto::bytes_to_json(c.path)}};
    MOAT_TRY(write_line(j.dump()));
  }
  if (std::fflush(stdout) != 0) return errno_error("write the answer");
  return ok_status();
}

}  // namespace

int run_root_reader(int argc, char** argv) {
  auto args = parse(argc, argv);
  Status st = args ? run(*args) : Status(args.error());
  if (!st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace moat::shim
