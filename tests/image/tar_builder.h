// Builds small layer tars in memory for tests, with libarchive's writer
// (pax format, so xattrs go out as SCHILY.xattr records).
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <string>

namespace moat::image::testing {

// Defined outside TarBuilder so it is complete where default arguments use it.
struct TarMeta {
  std::uint32_t mode = 0644;
  std::int64_t uid = 0;
  std::int64_t gid = 0;
  std::int64_t mtime = 1600000000;
  long mtime_nsec = 0;
  std::map<std::string, std::string> xattrs;
};

// Compresses arbitrary bytes (gzip or zstd), e.g. to build multi-member streams.
inline std::string compress(const std::string& data, bool zstd) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  if (zstd) {
    archive_write_add_filter_zstd(a);
  } else {
    archive_write_add_filter_gzip(a);
  }
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* client, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  archive_write_header(a, e);
  archive_write_data(a, data.data(), data.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

inline TarMeta meta(std::uint32_t mode, std::int64_t uid = 0, std::int64_t gid = 0,
                    std::int64_t mtime = 1600000000, long nsec = 0) {
  TarMeta m;
  m.mode = mode;
  m.uid = uid;
  m.gid = gid;
  m.mtime = mtime;
  m.mtime_nsec = nsec;
  return m;
}

class TarBuilder {
 public:
  enum class Compression { kNone, kGzip, kZstd };

  using Meta = TarMeta;

  explicit TarBuilder(Compression c = Compression::kNone) {
    a_ = archive_write_new();
    archive_write_set_format_pax(a_);
    if (c == Compression::kGzip) archive_write_add_filter_gzip(a_);
    if (c == Compression::kZstd) archive_write_add_filter_zstd(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open(a_, &out_, nullptr, &TarBuilder::write_cb, nullptr);
  }
  ~TarBuilder() {
    if (a_) archive_write_free(a_);
  }

  TarBuilder& file(const std::string& path, const std::string& data, Meta m = {}) {
    return add(path, AE_IFREG, m, &data);
  }
  TarBuilder& dir(const std::string& path, Meta m = meta(0755)) {
    return add(path, AE_IFDIR, m);
  }
  TarBuilder& symlink(const std::string& path, const std::string& target, Meta m = meta(0777)) {
    symlink_ = target;
    return add(path, AE_IFLNK, m);
  }
  TarBuilder& hardlink(const std::string& path, const std::string& target, Meta m = {}) {
    hardlink_ = target;
    return add(path, AE_IFREG, m);
  }
  TarBuilder& device(const std::string& path, bool block, unsigned major, unsigned minor,
                     Meta m = meta(0600)) {
    major_ = major;
    minor_ = minor;
    return add(path, block ? AE_IFBLK : AE_IFCHR, m);
  }
  TarBuilder& fifo(const std::string& path, Meta m = {}) { return add(path, AE_IFIFO, m); }
  TarBuilder& whiteout(const std::string& path) { return file(path, "", meta(0)); }

  std::string finish() {
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return out_;
  }

 private:
  static la_ssize_t write_cb(archive*, void* client, const void* buf, size_t n) {
    static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }

  TarBuilder& add(const std::string& path, unsigned type, const Meta& m,
                  const std::string* data = nullptr) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, m.mode);
    archive_entry_set_uid(e, m.uid);
    archive_entry_set_gid(e, m.gid);
    archive_entry_set_mtime(e, m.mtime, m.mtime_nsec);
    for (const auto& [name, value] : m.xattrs) {
      archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
    }
    if (type == AE_IFLNK) archive_entry_set_symlink(e, symlink_.c_str());
    if (!hardlink_.empty()) {
      archive_entry_set_hardlink(e, hardlink_.c_str());
      hardlink_.clear();
      data = nullptr;
    }
    if (type == AE_IFCHR || type == AE_IFBLK) {
      archive_entry_set_rdevmajor(e, major_);
      archive_entry_set_rdevminor(e, minor_);
    }
    archive_entry_set_size(e, data ? static_cast<la_int64_t>(data->size()) : 0);
    archive_write_header(a_, e);
    if (data && !data->empty()) archive_write_data(a_, data->data(), data->size());
    archive_entry_free(e);
    return *this;
  }

  archive* a_ = nullptr;
  std::string out_;
  std::string symlink_;
  std::string hardlink_;
  unsigned major_ = 0;
  unsigned minor_ = 0;
};

}  // namespace moat::image::testing
