#include "store/disk_digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "util/hex.h"
#include "util/unique_fd.h"

namespace moat::store {
namespace {

constexpr std::size_t kBlock = 4096;
constexpr std::size_t kChunk = 1 << 20;

struct MdFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

bool all_zero(const unsigned char* p, std::size_t n) {
  // Compare the block with itself shifted by one byte: all equal and the
  // first byte zero means all zero.
  return p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0;
}

void put_u64(EVP_MD_CTX* md, std::uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  EVP_DigestUpdate(md, b, sizeof(b));
}

// Hashes the non-zero blocks that overlap [start, end), whole 4 KiB blocks
// (the last block of the file may be short), none twice: `hashed_until` is
// where the previous range's last block ended.
Status hash_range(int fd, EVP_MD_CTX* md, off_t start, off_t end, off_t size, off_t& hashed_until,
                  std::vector<unsigned char>& buf, const std::string& path) {
  const off_t block = static_cast<off_t>(kBlock);
  off_t pos = std::max(start - start % block, hashed_until);
  end = std::min(size, (end + block - 1) / block * block);
  hashed_until = std::max(hashed_until, end);
  while (pos < end) {
    std::size_t want = static_cast<std::size_t>(std::min<off_t>(static_cast<off_t>(kChunk), end - pos));
    ssize_t n = ::pread(fd, buf.data(), want, pos);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read " + path);
    if (n == 0) return make_error(path + " ended while being read", EIO);
    std::size_t got = static_cast<std::size_t>(n);
    for (std::size_t off = 0; off < got; off += kBlock) {
      std::size_t len = std::min(kBlock, got - off);
      if (all_zero(buf.data() + off, len)) continue;
      put_u64(md, static_cast<std::uint64_t>(pos) + off);
      EVP_DigestUpdate(md, buf.data() + off, len);
    }
    pos += static_cast<off_t>(got);
  }
  return ok_status();
}

}  // namespace

Result<std::string> disk_content_digest(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("stat " + path);
  if (!S_ISREG(st.st_mode)) return make_error(path + " is not a regular file", EINVAL);
  std::unique_ptr<EVP_MD_CTX, MdFree> md(EVP_MD_CTX_new());
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) return make_error("sha256 unavailable", EIO);
  put_u64(md.get(), static_cast<std::uint64_t>(st.st_size));
  std::vector<unsigned char> buf(kChunk);
  off_t pos = 0, hashed_until = 0;
  while (pos < st.st_size) {
    off_t data = ::lseek(fd.get(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;
      return errno_error("seek data in " + path);
    }
    off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
    if (hole < 0) hole = st.st_size;
    MOAT_TRY(hash_range(fd.get(), md.get(), data, hole, st.st_size, hashed_until, buf, path));
    pos = hole;
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md.get(), out, &len);
  return "sha256:" + lower_hex(out, len);
}

Result<std::uint64_t> allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("stat " + path);
  return static_cast<std::uint64_t>(st.st_blocks) * 512u;
}

}  // namespace moat::store
