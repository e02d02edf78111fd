#include "store/ext4_image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "store/moat_home.h"
#include "store/sparse_copy.h"
#include "store/tree_digest.h"
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

Result<std::string> ext4_from_directory(const std::string& dir, const std::string& cache_dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno_error("root filesystem directory " + dir);
  if (!S_ISDIR(st.st_mode)) return make_error("root filesystem " + dir + " is not a directory");
  MOAT_ASSIGN_OR_RETURN(auto digest, tree_digest(dir));
  std::string out_dir = cache_dir + "/rootfs";
  MOAT_TRY(make_dirs(out_dir, 0700));
  std::string image = out_dir + "/" + digest.substr(0, 32) + ".ext4";
  if (exists(image)) return image;

  MOAT_ASSIGN_OR_RETURN(auto size, tree_size(dir));
  // Data plus inode tables (256 B each) and ext4 metadata, with headroom:
  // mkfs -d fails rather than grows when the estimate is short.
  std::uint64_t inodes = size.entries + 1024;
  std::uint64_t bytes = size.bytes + size.bytes / 5 + inodes * 512 + (32ull << 20);
  std::uint64_t kib = (bytes + 1023) / 1024;
  std::string tmp = image + ".tmp." + random_id(8);
  auto st2 = run_checked({"mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^has_journal",
                          "-N", std::to_string(inodes), "-L", "moat-root", "-E",
                          "lazy_itable_init=0,root_owner=0:0", "-d", dir, tmp, std::to_string(kib) + "k"});
  if (!st2) {
    ::unlink(tmp.c_str());
    return st2.error().wrap("building an ext4 root from " + dir);
  }
  MOAT_TRY(publish(tmp, image));
  return image;
}

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
