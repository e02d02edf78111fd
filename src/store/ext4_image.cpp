#include "store/ext4_image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "store/moat_home.h"
#include "store/sparse_copy.h"
#include "util/subprocess.h"

namespace moat::store {
namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

Status publish(const std::string& tmp, const std::string& final_path) {
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errno_error("rename " + tmp, err);
  }
  return ok_status();
}

}  // namespace

Status make_upper_disk(const std::string& path, std::uint64_t size_mib, const std::string& cache_dir) {
  std::string dir = cache_dir + "/upper";
  MOAT_TRY(make_dirs(dir, 0700));
  std::string tmpl = dir + "/empty-" + std::to_string(size_mib) + "m-v2.ext4";
  if (!exists(tmpl)) {
    std::string tmp = tmpl + ".tmp." + random_id(8);
    // The overlay's upper and work directories are made here, once, rather
    // than by every guest at boot (each is a journalled operation under TCG).
    std::string skeleton = tmp + ".d";
    MOAT_TRY(make_dirs(skeleton + "/upper", 0755));
    MOAT_TRY(make_dirs(skeleton + "/work", 0755));
    ::chmod(skeleton.c_str(), 0755);
    // lazy init keeps the file sparse; the guest mounts with noinit_itable so
    // it does not fill the tables in behind our back either.
    auto st = run_checked({"mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "moat-upper", "-E",
                           "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", "-d", skeleton, tmp,
                           std::to_string(size_mib) + "M"});
    (void)remove_tree(skeleton);
    if (!st) {
      ::unlink(tmp.c_str());
      return st.error().wrap("making an empty upper disk");
    }
    MOAT_TRY(publish(tmp, tmpl));
  }
  return sparse_copy(tmpl, path);
}

}  // namespace moat::store
