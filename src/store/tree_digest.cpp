#include "store/tree_digest.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "util/hex.h"
#include "util/unique_fd.h"

namespace moat::store {
namespace {

constexpr int kMaxDepth = 256;

using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

template <typename Visit>
Status walk(int dirfd, const std::string& rel, int depth, Visit& visit) {
  if (depth > kMaxDepth) return make_error("directory tree deeper than " + std::to_string(kMaxDepth) + " at " + rel);
  MOAT_ASSIGN_OR_RETURN(auto names, sorted_entries(dirfd, rel));
  for (const auto& name : names) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return errno_error("stat " + rel + "/" + name);
    std::string child = rel + "/" + name;
    MOAT_TRY(visit(dirfd, name, child, st));
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return errno_error("open " + child);
      MOAT_TRY(walk(sub.get(), child, depth + 1, visit));
    }
  }
  return ok_status();
}

void put(EVP_MD_CTX* ctx, const std::string& s) {
  std::uint64_t n = s.size();
  EVP_DigestUpdate(ctx, &n, sizeof(n));
  EVP_DigestUpdate(ctx, s.data(), s.size());
}

}  // namespace

Result<std::vector<std::string>> sorted_entries(int dirfd, const std::string& path) {
  int fd = ::dup(dirfd);
  DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
  if (!dir) {
    if (fd >= 0) ::close(fd);
    return errno_error("open directory " + path);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::string> tree_digest(const std::string& root) {
  UniqueFd rootfd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rootfd) return errno_error("open " + root);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  put(ctx.get(), "moat-tree-v1");
  auto visit = [&](int dirfd, const std::string& name, const std::string& rel,
                   const struct stat& st) -> Status {
    std::string meta = rel + "\n" + std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + " " +
                       std::to_string(st.st_gid) + " " + std::to_string(st.st_size) + " " +
                       std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + " " +
                       std::to_string(st.st_rdev);
    put(ctx.get(), meta);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlinkat(dirfd, name.c_str(), target, sizeof(target));
      if (n < 0) return errno_error("readlink " + rel);
      put(ctx.get(), std::string(target, static_cast<std::size_t>(n)));
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return errno_error("open " + rel);
      char buf[1 << 16];
      ssize_t n;
      while ((n = ::read(fd.get(), buf, sizeof(buf))) > 0) EVP_DigestUpdate(ctx.get(), buf, static_cast<std::size_t>(n));
      if (n < 0) return errno_error("read " + rel);
    }
    return ok_status();
  };
  MOAT_TRY(walk(rootfd.get(), "", 0, visit));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return lower_hex(md, len);
}

Result<TreeSize> tree_size(const std::string& root) {
  UniqueFd rootfd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rootfd) return errno_error("open " + root);
  TreeSize size;
  auto visit = [&](int, const std::string&, const std::string&, const struct stat& st) -> Status {
    size.entries++;
    size.bytes += (static_cast<unsigned long long>(st.st_size) + 4095) / 4096 * 4096;
    return ok_status();
  };
  MOAT_TRY(walk(rootfd.get(), "", 0, visit));
  return size;
}

}  // namespace moat::store
