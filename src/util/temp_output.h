// An output file written under a temporary name in its final directory and
// renamed into place only once complete and synced, so no half-written image
// (or credential file, write_file_atomic.h) is ever visible; removed if never
// committed.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::image {

class TempOutput {
 public:
  // `mode` is the file's mode exactly (fchmod, not masked by the umask).
  // Images are read-only and shared by every sandbox, hence 0644; mkostemp
  // gives 0600.
  static Result<TempOutput> create(const std::string& output, mode_t mode = 0644) {
    TempOutput t;
    t.final_ = output;
    t.path_ = output + ".tmp-XXXXXX";
    int fd = ::mkostemp(t.path_.data(), O_CLOEXEC);
    if (fd < 0) return errno_error("creating temporary file for " + output);
    t.fd_.reset(fd);
    if (::fchmod(fd, mode) != 0) return errno_error("chmod " + t.path_);
    return t;
  }
  TempOutput(TempOutput&&) = default;
  ~TempOutput() {
    if (!committed_ && fd_) ::unlink(path_.c_str());
  }

  int fd() const { return fd_.get(); }

  Status commit() {
    if (::fsync(fd_.get()) != 0) return errno_error("fsync " + path_);
    if (::rename(path_.c_str(), final_.c_str()) != 0) return errno_error("rename to " + final_);
    committed_ = true;
    return ok_status();
  }

 private:
  TempOutput() = default;
  std::string final_;
  std::string path_;
  UniqueFd fd_;
  bool committed_ = false;
};

}  // namespace moat::image
