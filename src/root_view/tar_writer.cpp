#include "root_view/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace moat::root_view {
namespace {

constexpr std::size_t kChunk = 1 << 20;

struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

}  // namespace

Result<TarWriter> TarWriter::to_fd(int fd) {
  struct archive* a = archive_write_new();
  if (!a) return make_error("libarchive: out of memory", ENOMEM);
  TarWriter w(a);
  if (archive_write_set_format_pax(a) != ARCHIVE_OK ||
      archive_write_set_options(a, "xattrheader=SCHILY") != ARCHIVE_OK ||
      archive_write_open_fd(a, fd) != ARCHIVE_OK)
    return w.archive_error("start the tar stream");
  return w;
}

TarWriter::TarWriter(TarWriter&& other) noexcept : a_(other.a_), links_(std::move(other.links_)) { other.a_ = nullptr; }

TarWriter::~TarWriter() {
  if (a_) archive_write_free(a_);
}

Error TarWriter::archive_error(const std::string& what) const {
  const char* msg = a_ ? archive_error_string(a_) : nullptr;
  return make_error(what + ": " + (msg ? msg : "libarchive error"), EIO);
}

Status TarWriter::add(const OverlayView& view, const std::string& name, const RootEntry& e) {
  if (e.type() == 0140000) return ok_status();  // a socket
  std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
  archive_entry_copy_pathname(entry.get(), name.c_str());
  archive_entry_set_uid(entry.get(), e.uid);
  archive_entry_set_gid(entry.get(), e.gid);
  archive_entry_set_mtime(entry.get(), e.mtime_sec, static_cast<long>(e.mtime_nsec));
  archive_entry_set_mode(entry.get(), static_cast<mode_t>(e.mode));
  MOAT_ASSIGN_OR_RETURN(auto xattrs, view.visible_xattrs(e));
  for (const auto& [k, v] : xattrs) archive_entry_xattr_add_entry(entry.get(), k.c_str(), v.data(), v.size());
  bool body = e.is_regular();
  if (!e.is_dir() && e.nlink > 1) {
    auto key = std::make_pair(e.upper.has_value(), e.upper ? std::uint64_t{*e.upper} : std::uint64_t{*e.lower});
    auto [it, first] = links_.emplace(key, name);
    if (!first) {
      archive_entry_copy_hardlink(entry.get(), it->second.c_str());
      archive_entry_set_size(entry.get(), 0);
      body = false;
    }
  }
  if (e.is_symlink()) {
    MOAT_ASSIGN_OR_RETURN(auto target, view.readlink(e));
    archive_entry_copy_symlink(entry.get(), target.c_str());
  }
  if (e.type() == 0020000 || e.type() == 0060000) {
    archive_entry_set_rdevmajor(entry.get(), e.rdev_major);
    archive_entry_set_rdevminor(entry.get(), e.rdev_minor);
  }
  if (body) archive_entry_set_size(entry.get(), static_cast<la_int64_t>(e.size));
  // ARCHIVE_WARN: written, with a name that is not UTF-8 kept as bytes
  // (hdrcharset=BINARY on that entry).
  int rc = archive_write_header(a_, entry.get());
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return archive_error("write the header of " + name);
  if (!body) return ok_status();
  std::vector<char> buf(kChunk);
  std::uint64_t done = 0;
  while (done < e.size) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, e.size - done));
    MOAT_ASSIGN_OR_RETURN(auto n, view.read(e, done, buf.data(), want));
    if (n == 0) return make_error(name + " is shorter than its size", EIO);
    if (archive_write_data(a_, buf.data(), n) != static_cast<la_ssize_t>(n)) return archive_error("write " + name);
    done += n;
  }
  return ok_status();
}

Status TarWriter::add_marker(const std::string& name, std::uint32_t mode) {
  std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
  archive_entry_copy_pathname(entry.get(), name.c_str());
  archive_entry_set_mode(entry.get(), static_cast<mode_t>(0100000 | mode));
  archive_entry_set_size(entry.get(), 0);
  if (archive_write_header(a_, entry.get()) != ARCHIVE_OK) return archive_error("write " + name);
  return ok_status();
}

Status TarWriter::finish() {
  if (archive_write_close(a_) != ARCHIVE_OK) return archive_error("finish the tar stream");
  return ok_status();
}

}  // namespace moat::root_view
