#include "server/bearer_token.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "util/hex.h"

namespace moat::server {
namespace {

constexpr std::size_t kMinToken = 16;
constexpr std::size_t kMaxTokenFile = 4096;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  std::size_t start = s.find_first_not_of(" \t");
  return start == std::string::npos ? std::string() : s.substr(start);
}

Result<std::string> create_token(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(std::string token, random_hex_token(32));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno_error("create token file " + path);
  std::string line = token + "\n";
  bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  int err = errno;
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!written || !synced) {
    ::unlink(path.c_str());
    return errno_error("write token file " + path, written ? EIO : err);
  }
  return token;
}

}  // namespace

Result<std::string> random_hex_token(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (getrandom(raw.data(), raw.size(), 0) != static_cast<ssize_t>(raw.size())) return errno_error("getrandom");
  return lower_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

Result<std::string> load_or_create_token(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) return create_token(path);
  if (fd < 0) return errno_error("open token file " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error("token file " + path + " is not a regular file", EINVAL);
  }
  if (st.st_mode & 077) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error("token file " + path + " may be read or written by others (mode " + mode + "): chmod 600 it",
                      EACCES);
  }
  std::string text(kMaxTokenFile + 1, '\0');
  ssize_t n = ::read(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return errno_error("read token file " + path, err);
  if (static_cast<std::size_t>(n) > kMaxTokenFile) return make_error("token file " + path + " is over 4 KiB", EINVAL);
  text.resize(static_cast<std::size_t>(n));
  std::string token = trimmed(text);
  if (token.size() < kMinToken || token.find_first_of(" \t\r\n") != std::string::npos)
    return make_error("token file " + path + " must hold one token of at least 16 characters", EINVAL);
  return token;
}

bool token_matches(std::string_view given, std::string_view expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0 && !expected.empty();
}

std::string bearer_of(std::string_view authorization) {
  if (authorization.size() < 7 || strncasecmp(authorization.data(), "bearer ", 7) != 0) return {};
  std::string token(authorization.substr(7));
  return trimmed(token);
}

}  // namespace moat::server
