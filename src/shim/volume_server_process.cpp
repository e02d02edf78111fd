#include "shim/volume_server_process.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>

#include "fs/dir_backend.h"
#include "fs/fuse_server.h"
#include "fs/vhost_user_fs.h"
#include "jail/privileges.h"
#include "jail/root_tree.h"
#include "jail/syscall_filter.h"
#include "shim/syscall_lists.h"

namespace moat::shim {
namespace {

// Where the volume's directory is inside the server's own root.
constexpr const char* kVolumeInRoot = "/volume";

Result<std::uint64_t> parse_number(const std::string& option, const char* text) {
  std::uint64_t v = 0;
  const char* end = text + std::strlen(text);
  auto [p, ec] = std::from_chars(text, end, v);
  if (ec != std::errc() || p != end) return make_error(option + ": not a number: " + text, EINVAL);
  return v;
}

// The server's own root: the volume and a procfs, nothing else.
Status enter_own_root(const VolumeServerArgs& args) {
  jail::RootTree tree(args.root_mount_point);
  if (args.read_only) {
    MOAT_TRY(tree.add_bind("volume", args.host_path));
  } else {
    MOAT_TRY(tree.add_writable_bind("volume", args.host_path));
  }
  tree.add_proc("proc");
  jail::PreparedRoot root = tree.prepare();
  const char* step = "";
  const char* path = "";
  if (int err = jail::enter_root(root, &step, &path); err != 0)
    return errno_error(std::string("entering the server's root: ") + step + " " + (path ? path : ""), err);
  return ok_status();
}

Status serve(const VolumeServerArgs& args) {
  bool own_root = !args.root_mount_point.empty();
  if (own_root) {
    MOAT_TRY(enter_own_root(args));
    static constexpr int kKeep[] = {CAP_DAC_OVERRIDE, CAP_FOWNER};
    if (int err = jail::keep_only_capabilities(kKeep, 2); err != 0)
      return errno_error("dropping capabilities", err);
  }
  fs::DirBackendOptions options;
  options.read_only = args.read_only;
  options.max_open_nodes = args.max_open;
  options.max_open_handles = args.max_open;
  options.size_limit = args.size_bytes;
  // Without CAP_DAC_READ_SEARCH handles cannot be opened anyway; the filter
  // refuses open_by_handle_at too.
  options.file_handles = !own_root;
  MOAT_ASSIGN_OR_RETURN(auto backend, fs::open_dir_backend(own_root ? kVolumeInRoot : args.host_path, options));
  fs::FuseServer server(*backend);
  MOAT_ASSIGN_OR_RETURN(auto device, fs::VhostUserFsDevice::adopt(UniqueFd(kVolumeServerSocketFd), server));
  MOAT_TRY(jail::install_syscall_filter(volume_server_syscall_filter("moat-volume[" + args.host_path + "]")));
  return device->run();
}

}  // namespace

std::vector<std::string> VolumeServerArgs::to_argv(const std::string& shim_binary) const {
  std::vector<std::string> argv = {shim_binary, "--volume-server", "--path", host_path};
  if (read_only) argv.push_back("--read-only");
  argv.insert(argv.end(), {"--size", std::to_string(size_bytes), "--max-open", std::to_string(max_open)});
  if (!root_mount_point.empty()) argv.insert(argv.end(), {"--root", root_mount_point});
  return argv;
}

Result<VolumeServerArgs> VolumeServerArgs::parse(int argc, char** argv) {
  VolumeServerArgs a;
  for (int i = 0; i < argc; ++i) {
    std::string opt = argv[i];
    if (opt == "--read-only") {
      a.read_only = true;
      continue;
    }
    if (i + 1 >= argc) return make_error("volume server: " + opt + " needs a value", EINVAL);
    const char* value = argv[++i];
    if (opt == "--path") {
      a.host_path = value;
    } else if (opt == "--root") {
      a.root_mount_point = value;
    } else if (opt == "--size") {
      MOAT_ASSIGN_OR_RETURN(a.size_bytes, parse_number(opt, value));
    } else if (opt == "--max-open") {
      MOAT_ASSIGN_OR_RETURN(a.max_open, parse_number(opt, value));
      if (a.max_open < 16) a.max_open = 16;
    } else {
      return make_error("volume server: unknown option " + opt, EINVAL);
    }
  }
  if (a.host_path.empty() || a.host_path[0] != '/')
    return make_error("volume server: --path must be an absolute path", EINVAL);
  return a;
}

int run_volume_server(const VolumeServerArgs& args) {
  if (Status st = serve(args); !st) {
    std::fprintf(stderr, "moat-volume[%s]: %s\n", args.host_path.c_str(), st.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace moat::shim
