// The host's extraction of a guest's archive (copy out) against archives a
// hostile guest could send, built here with libarchive's writer: modes, depth,
// files that appear only when complete, and undoing a failed copy.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "sandbox/host_tar.h"

namespace moat {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/moat-host-tar-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec); it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A tar stream as a guest could send it, entry by entry.
class CraftedTar {
 public:
  CraftedTar() : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    // Unblocked, so partial() holds every byte written so far.
    archive_write_set_bytes_per_block(a_, 0);
    archive_write_open(a_, &out_, nullptr, append, nullptr);
  }
  ~CraftedTar() { archive_write_free(a_); }

  CraftedTar& dir(const std::string& name, mode_t mode, std::int64_t uid = 0) {
    return add(name, AE_IFDIR, mode, "", uid);
  }
  CraftedTar& file(const std::string& name, mode_t mode, const std::string& data, std::int64_t uid = 0) {
    return add(name, AE_IFREG, mode, data, uid);
  }
  CraftedTar& fifo(const std::string& name, mode_t mode) { return add(name, AE_IFIFO, mode, "", 0); }
  CraftedTar& symlink(const std::string& name, const std::string& target) {
    return add(name, AE_IFLNK, 0777, "", 0, target);
  }
  // The whole stream, ended with the end-of-archive blocks.
  std::string done() {
    archive_write_close(a_);
    return out_;
  }
  // The stream so far, without the end-of-archive blocks.
  const std::string& partial() const { return out_; }

 private:
  static la_ssize_t append(archive*, void* ud, const void* buf, size_t n) {
    static_cast<std::string*>(ud)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  CraftedTar& add(const std::string& name, unsigned type, mode_t mode, const std::string& data, std::int64_t uid,
                  const std::string& symlink = "") {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, uid);
    archive_entry_set_mtime(e, 1600000000, 0);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    if (!symlink.empty()) archive_entry_copy_symlink(e, symlink.c_str());
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << archive_error_string(a_);
    if (!data.empty()) archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }

  archive* a_;
  std::string out_;
};

// Feeds `tar` in chunks of `chunk` bytes; `each` runs before every chunk.
Result<sandbox::TarTotals> extract(const std::string& tar, const std::string& dest, bool preserve_owner = false,
                                   std::size_t chunk = 4096, const std::function<void()>& each = {}) {
  std::size_t pos = 0;
  sandbox::ChunkSource src = [&]() -> Result<std::optional<std::string>> {
    if (each) each();
    if (pos >= tar.size()) return std::optional<std::string>();
    std::string c = tar.substr(pos, chunk);
    pos += c.size();
    return std::optional<std::string>(c);
  };
  sandbox::HostTarOptions opt;
  opt.preserve_owner = preserve_owner;
  return sandbox::extract_host_tar(dest, "top", opt, src);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& data, mode_t mode) {
  std::ofstream(path, std::ios::binary) << data;
  ::chmod(path.c_str(), mode);
}

// Every entry below `dir`: type and mode, owner, contents or link target,
// and the mtime of everything but directories (whose mtime changes whenever
// an entry is added or removed).
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
    if (!S_ISDIR(st.st_mode)) d << " mtime=" << st.st_mtim.tv_sec;
    if (S_ISREG(st.st_mode)) d << " data=" << read_file(e.path());
    if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(e.path()).string();
    out[e.path().string().substr(dir.size())] = d.str();
  }
  return out;
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

class HostTarExtract : public ::testing::Test {
 protected:
  void SetUp() override {
    dest_ = base_.path() + "/dest";
    ASSERT_EQ(::mkdir(dest_.c_str(), 0755), 0);
  }
  TempDir base_;
  std::string dest_;
};

// ---- modes ----

TEST_F(HostTarExtract, AnExistingDirectoryKeepsItsModeAndOwner) {
  ASSERT_EQ(::mkdir((dest_ + "/top").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((dest_ + "/top").c_str(), 0700), 0);
  std::string tar = CraftedTar().dir("top", 0777).file("top/f", 0644, "x").done();
  auto got = extract(tar, dest_);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(mode_of(dest_ + "/top"), 0700u);
  EXPECT_EQ(read_file(dest_ + "/top/f"), "x");

  // With -a, the archive's owner is not applied to it either.
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  struct stat before {};
  ASSERT_EQ(::stat((dest_ + "/top").c_str(), &before), 0);
  tar = CraftedTar().dir("top", 01777, 4242).done();
  got = extract(tar, dest_, /*preserve_owner=*/true);
  ASSERT_TRUE(got) << got.error().message;
  struct stat after {};
  ASSERT_EQ(::stat((dest_ + "/top").c_str(), &after), 0);
  EXPECT_EQ(after.st_mode & 07777, 0700u);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_gid, before.st_gid);
}

TEST_F(HostTarExtract, NewEntriesAreNeverSetuidNorWritableByGroupOrOthers) {
  CraftedTar t;
  t.dir("top", 01777).dir("top/open", 0777).dir("top/ro", 0555);
  t.file("top/shared", 0666, "s").file("top/suid", 06755, "#!/bin/sh\n").file("top/own", 0600, "o");
  t.fifo("top/pipe", 0666);
  std::string tar = t.done();
  for (bool preserve_owner : {false, true}) {
    if (preserve_owner && ::geteuid() != 0) continue;  // chown needs root
    TempDir out;
    auto got = extract(tar, out.path(), preserve_owner);
    ASSERT_TRUE(got) << got.error().message;
    std::string top = out.path() + "/top";
    EXPECT_EQ(mode_of(top), 0755u);
    EXPECT_EQ(mode_of(top + "/open"), 0755u);
    EXPECT_EQ(mode_of(top + "/ro"), 0555u);
    EXPECT_EQ(mode_of(top + "/shared"), 0644u);
    EXPECT_EQ(mode_of(top + "/suid"), 0755u);
    EXPECT_EQ(mode_of(top + "/own"), 0600u);
    EXPECT_EQ(mode_of(top + "/pipe"), 0644u);
  }
}

// ---- depth ----

TEST_F(HostTarExtract, ATreeDeeperThan1024IsRefusedByNameAndNothingIsLeft) {
  std::string at_limit = "top", too_deep = "top";
  for (int i = 0; i < 1023; ++i) at_limit += "/d";
  for (int i = 0; i < 1025; ++i) too_deep += "/d";
  // A file 1024 directories below the top is copied (making 1023 of them),
  // a directory 1025 below is not.
  std::string tar = CraftedTar().dir("top", 0755).file(at_limit + "/f", 0644, "deep").dir(too_deep, 0755).done();
  auto got = extract(tar, dest_);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ELOOP);
  EXPECT_EQ(got.error().message, "copying from the sandbox: archive entry \"" + too_deep.substr(0, 200) +
                                     "...\" lies 1025 directories deep; the limit is 1024");
  EXPECT_EQ(names_in(dest_), std::vector<std::string>{});
}

TEST_F(HostTarExtract, ANameLongerThanPathMaxIsRefused) {
  CraftedTar t;
  std::string name = "top";
  t.dir(name, 0755);
  for (int i = 0; i < 17; ++i) {
    name += "/" + std::string(250, static_cast<char>('a' + i));
    t.dir(name, 0755);
  }
  ASSERT_EQ(name.size(), 4270u);
  auto got = extract(t.done(), dest_);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ENAMETOOLONG);
  EXPECT_EQ(got.error().message, "copying from the sandbox: archive entry \"" + name.substr(0, 200) +
                                     "...\" has a name of 4270 bytes; the limit is 4095");
  EXPECT_EQ(names_in(dest_), std::vector<std::string>{});
}

// ---- all or nothing ----

TEST_F(HostTarExtract, AFileAppearsUnderItsNameOnlyWhenComplete) {
  std::string data(300 * 1024, 'z');
  std::string tar = CraftedTar().dir("top", 0755).file("top/f", 0644, data).done();
  std::size_t seen_partial = 0, seen_temp = 0;
  auto look = [&]() {
    struct stat st {};
    if (::stat((dest_ + "/top/f").c_str(), &st) == 0 && static_cast<std::size_t>(st.st_size) != data.size())
      ++seen_partial;
    if (fs::exists(dest_ + "/top") && names_in(dest_ + "/top").size() == 1 &&
        names_in(dest_ + "/top")[0].rfind(".moat-tmp-", 0) == 0)
      ++seen_temp;
  };
  auto got = extract(tar, dest_, false, 4096, look);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(seen_partial, 0u);
  EXPECT_GT(seen_temp, 0u);
  EXPECT_EQ(read_file(dest_ + "/top/f"), data);
  EXPECT_EQ(names_in(dest_ + "/top"), std::vector<std::string>{"f"});
}

// What a merge into an existing tree starts from.
void make_existing(const std::string& dest) {
  ASSERT_EQ(::mkdir((dest + "/top").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dest + "/top/olddir").c_str(), 0750), 0);
  write_file(dest + "/top/keep", "old keep", 0600);
  write_file(dest + "/top/replaced", "old replaced", 0640);
  write_file(dest + "/top/olddir/inner", "old inner", 0644);
  ASSERT_EQ(::symlink("keep", (dest + "/top/link").c_str()), 0);
  write_file(dest + "/sibling", "sibling", 0644);
}

CraftedTar& merge_entries(CraftedTar& t) {
  return t.dir("top", 0777)
      .file("top/replaced", 0644, "new replaced")
      .file("top/link", 0644, "a file where a link was")
      .dir("top/new", 0755)
      .dir("top/new/deeper", 0555)
      .file("top/new/deeper/f", 0644, "new f")
      .file("top/olddir/added", 0644, "added")
      .file("top/olddir/inner", 0644, "new inner")
      .symlink("top/s", "/etc")
      .fifo("top/p", 0644)
      .file("top/big", 0644, std::string(100000, 'b'));
}

TEST_F(HostTarExtract, AMergeReplacesFilesAndLeavesNoTemporaryNames) {
  make_existing(dest_);
  CraftedTar t;
  auto got = extract(merge_entries(t).done(), dest_);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(mode_of(dest_ + "/top"), 0700u);
  EXPECT_EQ(mode_of(dest_ + "/top/olddir"), 0750u);
  EXPECT_EQ(read_file(dest_ + "/top/keep"), "old keep");
  EXPECT_EQ(read_file(dest_ + "/top/replaced"), "new replaced");
  EXPECT_EQ(mode_of(dest_ + "/top/replaced"), 0644u);
  EXPECT_EQ(read_file(dest_ + "/top/link"), "a file where a link was");
  EXPECT_EQ(read_file(dest_ + "/top/olddir/inner"), "new inner");
  EXPECT_EQ(read_file(dest_ + "/top/new/deeper/f"), "new f");
  EXPECT_EQ(names_in(dest_ + "/top"),
            (std::vector<std::string>{"big", "keep", "link", "new", "olddir", "p", "replaced", "s"}));
  EXPECT_EQ(names_in(dest_ + "/top/olddir"), (std::vector<std::string>{"added", "inner"}));
  EXPECT_EQ(names_in(dest_), (std::vector<std::string>{"sibling", "top"}));
}

TEST_F(HostTarExtract, AFailedMergeLeavesTheHostAsItWas) {
  make_existing(dest_);
  auto before = snapshot(dest_);
  CraftedTar t;
  merge_entries(t);
  // The stream ends inside top/big's data.
  std::string cut = t.partial().substr(0, t.partial().size() - 50000);
  auto got = extract(cut, dest_);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "archive from the sandbox: Truncated tar archive");
  EXPECT_EQ(snapshot(dest_), before);
}

TEST_F(HostTarExtract, AFailedCopyToANewNameRemovesAllItMade) {
  CraftedTar t;
  t.dir("top", 0755).dir("top/a", 0555).file("top/a/f", 0644, "f").dir("top/a/b", 0700);
  t.file("top/a/b/g", 0644, "g").file("top/bad/../../escape", 0644, "x");
  auto got = extract(t.done(), dest_);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, EINVAL);
  EXPECT_EQ(got.error().message,
            "copying from the sandbox: archive name \"top/bad/../../escape\" contains \"..\"");
  EXPECT_EQ(names_in(dest_), std::vector<std::string>{});
  EXPECT_EQ(names_in(base_.path()), std::vector<std::string>{"dest"});
}

// The agent reports a file it could not read at the end of the stream,
// after the archive's end marker.
TEST_F(HostTarExtract, AnErrorAfterTheArchiveEndFailsTheCopyAndUndoesIt) {
  std::string tar = CraftedTar().dir("top", 0755).file("top/f", 0644, "f").done();
  bool sent = false;
  sandbox::ChunkSource src = [&]() -> Result<std::optional<std::string>> {
    if (!sent) {
      sent = true;
      return std::optional<std::string>(tar);
    }
    return make_error("/data/top/secret: Permission denied", EACCES);
  };
  auto got = sandbox::extract_host_tar(dest_, "top", sandbox::HostTarOptions{}, src);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, EACCES);
  EXPECT_EQ(got.error().message, "/data/top/secret: Permission denied");
  EXPECT_EQ(names_in(dest_), std::vector<std::string>{});
}

TEST_F(HostTarExtract, AFailedReplacementOfAFilePutsTheOldOneBack) {
  write_file(dest_ + "/top", "old", 0600);
  auto before = snapshot(dest_);
  // A file, then an entry beneath it as if it were a directory.
  CraftedTar t;
  t.file("top", 0644, "new").file("top/x", 0644, "y");
  auto got = extract(t.done(), dest_);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ELOOP);
  EXPECT_EQ(snapshot(dest_), before);
  EXPECT_EQ(read_file(dest_ + "/top"), "old");
}

}  // namespace
}  // namespace moat
