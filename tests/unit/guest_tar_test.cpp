// The guest's tar writer and reader, the host's libarchive side, and hostile
// archives against both extractors.
#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "agent/guest_tar.h"
#include "tree/tree_writer.h"
#include "sandbox/host_tar.h"

namespace moat {
namespace {

using agent::GuestTarReader;
using agent::GuestTarWriter;
using agent::TarHeader;
using agent::TreeWriter;
using agent::TreeWriterOptions;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/moat-tar-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    // Read-only directories from the tests must not stop the clean-up.
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& data, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << data;
  ::chmod(path.c_str(), mode);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void set_mtime(const std::string& path, time_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  ::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

std::string random_data(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Builds the test tree under root/top and returns "top".
std::string make_tree(const std::string& root) {
  std::string t = root + "/top";
  ::mkdir(t.c_str(), 0755);
  write_file(t + "/file.txt", "hello\n", 0640);
  write_file(t + "/empty", "", 0600);
  write_file(t + "/exec.sh", "#!/bin/sh\necho hi\n", 0755);
  write_file(t + "/big.bin", random_data(200 * 1024 + 13, 7), 0644);
  ::mkdir((t + "/sub").c_str(), 0700);
  ::mkdir((t + "/sub/deep").c_str(), 0555);  // empty and read-only
  ::link((t + "/file.txt").c_str(), (t + "/sub/hard").c_str());
  ::symlink("file.txt", (t + "/link").c_str());
  ::symlink("/etc/passwd", (t + "/abs-link").c_str());
  ::symlink(std::string(150, 'z').c_str(), (t + "/long-target").c_str());
  std::string long_dir = t + "/" + std::string(120, 'a');
  ::mkdir(long_dir.c_str(), 0750);
  write_file(long_dir + "/" + std::string(150, 'b'), "long name\n");
  ::mkfifo((t + "/fifo").c_str(), 0640);  // the host never makes a guest's file group-writable
  time_t when = 1600000000;
  for (const char* p : {"/file.txt", "/empty", "/exec.sh", "/big.bin", "/link", "/abs-link", "/long-target", "/fifo"})
    set_mtime(t + p, when++);
  set_mtime(long_dir + "/" + std::string(150, 'b'), when++);
  set_mtime(long_dir, when++);
  set_mtime(t + "/sub/deep", when++);
  set_mtime(t + "/sub", when++);
  set_mtime(t, when++);
  return "top";
}

// A description of every entry below `dir`: type, mode, size, times,
// contents, link targets, and which entries share an inode.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::map<ino_t, std::string> inodes;
  std::vector<std::string> names;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) names.push_back(e.path().string());
  std::sort(names.begin(), names.end());
  for (const auto& p : names) {
    struct stat st {};
    ::lstat(p.c_str(), &st);
    std::string rel = p.substr(dir.size());
    std::ostringstream d;
    d << std::oct << (st.st_mode) << std::dec << " mtime=" << st.st_mtim.tv_sec;
    if (S_ISREG(st.st_mode)) {
      d << " size=" << st.st_size << " data=" << std::hash<std::string>()(read_file(p));
      if (st.st_nlink > 1) {
        auto [it, fresh] = inodes.emplace(st.st_ino, rel);
        d << " inode-of=" << it->second;
      }
    }
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof buf);
      d << " -> " << std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    }
    out[rel] = d.str();
  }
  return out;
}

std::string guest_tar_of(const std::string& path, const std::string& name) {
  auto w = GuestTarWriter::open(path, name);
  EXPECT_TRUE(w) << (w ? "" : w.error().message);
  if (!w) return "";
  std::string out;
  // Odd-sized reads, so header, data and padding cross chunk edges.
  char chunk[10007];
  while (true) {
    auto n = (*w)->read(chunk, sizeof(chunk));
    EXPECT_TRUE(n) << (n ? "" : n.error().message);
    if (!n || *n == 0) break;
    out.append(chunk, *n);
  }
  return out;
}

Status extract_guest(const std::string& tar, const std::string& dest, std::size_t chunk = 4096) {
  UniqueFd dir(::open(dest.c_str(), O_RDONLY | O_DIRECTORY));
  TreeWriterOptions opt;
  opt.chown = false;
  TreeWriter w(dir.get(), opt);
  GuestTarReader r(w);
  for (std::size_t i = 0; i < tar.size(); i += chunk) MOAT_TRY(r.feed(std::string_view(tar).substr(i, chunk)));
  return r.finish();
}

Status extract_host(const std::string& tar, const std::string& dest, const std::string& top) {
  std::size_t pos = 0;
  sandbox::ChunkSource src = [&]() -> Result<std::optional<std::string>> {
    if (pos >= tar.size()) return std::optional<std::string>();
    std::string c = tar.substr(pos, 3000);
    pos += c.size();
    return std::optional<std::string>(c);
  };
  MOAT_TRY(sandbox::extract_host_tar(dest, top, sandbox::HostTarOptions{}, src));
  return ok_status();
}

TEST(GuestTar, WriterAndReaderRoundTripATreeExactly) {
  TempDir src;
  make_tree(src.path());
  std::string tar = guest_tar_of(src.path() + "/top", "top");
  ASSERT_FALSE(tar.empty());
  EXPECT_EQ(tar.size() % 512, 0u);
  for (std::size_t chunk : {1u, 511u, 65536u}) {
    TempDir out;
    auto st = extract_guest(tar, out.path(), chunk);
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(snapshot(out.path()), snapshot(src.path())) << "chunk " << chunk;
  }
}

TEST(GuestTar, ArchivesASingleFileUnderAnotherName) {
  TempDir src, out;
  write_file(src.path() + "/f", "abc", 0600);
  std::string tar = guest_tar_of(src.path() + "/f", "renamed");
  ASSERT_TRUE(extract_guest(tar, out.path()));
  EXPECT_EQ(read_file(out.path() + "/renamed"), "abc");
  struct stat st {};
  ASSERT_EQ(::stat((out.path() + "/renamed").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(GuestTar, LibarchiveReadsTheGuestWriter) {
  TempDir src, out;
  make_tree(src.path());
  std::string tar = guest_tar_of(src.path() + "/top", "top");
  auto st = extract_host(tar, out.path(), "top");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(snapshot(out.path()), snapshot(src.path()));
}

TEST(GuestTar, GuestReaderReadsTheHostWriter) {
  TempDir src, out;
  make_tree(src.path());
  std::string tar;
  sandbox::HostTarOptions opt;
  opt.preserve_owner = true;
  auto made = sandbox::write_host_tar(src.path() + "/top", "top", opt, [&](std::string_view d) {
    tar.append(d);
    return ok_status();
  });
  ASSERT_TRUE(made) << made.error().message;
  auto st = extract_guest(tar, out.path(), 777);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(snapshot(out.path()), snapshot(src.path()));
}

// File names are bytes: Latin-1 names, short (ustar) and long (pax), cross
// both writers and both readers unchanged.
TEST(GuestTar, NamesThatAreNotUtf8CrossBothWays) {
  TempDir src, from_guest, from_host;
  std::string top = src.path() + "/top";
  ASSERT_EQ(::mkdir(top.c_str(), 0755), 0);
  for (const std::string& name : {std::string("caf\xe9"), std::string(120, 'l') + "\xe9"})
    std::ofstream(top + "/" + name) << name.size();
  ASSERT_EQ(::symlink((std::string(150, 't') + "\xe9").c_str(), (top + "/link\xe9").c_str()), 0);
  std::string tar = guest_tar_of(top, "top");
  auto st = extract_host(tar, from_guest.path(), "top");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(snapshot(from_guest.path()), snapshot(src.path()));
  std::string host_tar;
  auto made = sandbox::write_host_tar(top, "top", sandbox::HostTarOptions{}, [&](std::string_view d) {
    host_tar.append(d);
    return ok_status();
  });
  ASSERT_TRUE(made) << made.error().message;
  auto back = extract_guest(host_tar, from_host.path());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(snapshot(from_host.path()), snapshot(src.path()));
}

TEST(GuestTar, PaxRecordsCarryHugeIdsAndNames) {
  TarHeader h;
  h.name = "top/" + std::string(200, 'n') + "/" + std::string(200, 'm');
  h.uid = 70000000;  // beyond 7 octal digits
  h.gid = 3;
  h.mtime = -100;
  h.size = 2;
  std::string tar;
  agent::encode_tar_header(h, tar);
  tar += "ok";
  tar.append(510, '\0');
  tar.append(1024, '\0');
  TempDir out;
  auto x = extract_guest(tar, out.path());
  ASSERT_TRUE(x) << x.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((out.path() + "/" + h.name).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 2);
  EXPECT_EQ(st.st_mtim.tv_sec, -100);
}

// ---- hostile archives ----

struct Entry {
  TarHeader h;
  std::string data;
};

std::string tar_of(const std::vector<Entry>& entries, bool trailer = true) {
  std::string out;
  for (auto e : entries) {
    e.h.size = e.data.size();
    agent::encode_tar_header(e.h, out);
    out += e.data;
    out.append((512 - e.data.size() % 512) % 512, '\0');
  }
  if (trailer) out.append(1024, '\0');
  return out;
}

Entry file(const std::string& name, const std::string& data) {
  Entry e;
  e.h.name = name;
  e.h.typeflag = '0';
  e.data = data;
  return e;
}
Entry symlink_entry(const std::string& name, const std::string& target) {
  Entry e;
  e.h.name = name;
  e.h.typeflag = '2';
  e.h.linkname = target;
  return e;
}
Entry hardlink_entry(const std::string& name, const std::string& target) {
  Entry e;
  e.h.name = name;
  e.h.typeflag = '1';
  e.h.linkname = target;
  return e;
}
Entry dir_entry(const std::string& name) {
  Entry e;
  e.h.name = name;
  e.h.typeflag = '5';
  e.h.mode = 0755;
  return e;
}

class HostileTar : public ::testing::Test {
 protected:
  void SetUp() override {
    dest_ = base_.path() + "/dest";
    outside_ = base_.path() + "/outside";
    ::mkdir(dest_.c_str(), 0755);
    ::mkdir(outside_.c_str(), 0755);
    write_file(outside_ + "/secret", "orig");
  }
  // Both extractors must refuse the archive with `err` and leave the
  // outside directory exactly as it was.
  void expect_refused(const std::vector<Entry>& entries, int err) {
    std::string tar = tar_of(entries);
    auto g = extract_guest(tar, dest_);
    EXPECT_FALSE(g) << "guest extractor accepted it";
    if (!g) {
      EXPECT_EQ(g.error().code, err) << g.error().message;
    }
    auto h = extract_host(tar, dest_, "top");
    EXPECT_FALSE(h) << "host extractor accepted it";
    if (!h) {
      EXPECT_EQ(h.error().code, err) << h.error().message;
    }
    expect_outside_untouched();
  }
  void expect_outside_untouched() {
    EXPECT_EQ(read_file(outside_ + "/secret"), "orig");
    std::vector<std::string> names;
    for (auto& e : std::filesystem::directory_iterator(outside_)) names.push_back(e.path().filename());
    EXPECT_EQ(names, std::vector<std::string>{"secret"});
  }
  TempDir base_;
  std::string dest_, outside_;
};

TEST_F(HostileTar, DotDotNamesAreRefused) {
  expect_refused({file("top/../../outside/secret", "pwned")}, EINVAL);
}

TEST_F(HostileTar, AbsoluteNamesAreRefused) {
  expect_refused({file(outside_ + "/new", "pwned")}, EINVAL);
}

TEST_F(HostileTar, APlantedAbsoluteSymlinkIsNotFollowed) {
  expect_refused({dir_entry("top/"), symlink_entry("top/d", outside_), file("top/d/secret", "pwned")}, ELOOP);
}

TEST_F(HostileTar, APlantedRelativeSymlinkIsNotFollowed) {
  expect_refused({symlink_entry("top/d", "../../outside"), file("top/d/new", "pwned")}, ELOOP);
}

TEST_F(HostileTar, ATopLevelSymlinkToRootIsNotFollowed) {
  expect_refused({symlink_entry("top", "/"), dir_entry("top/etc/")}, ELOOP);
}

TEST_F(HostileTar, HardlinksOutOfTheTreeAreRefused) {
  expect_refused({file("top/a", "x"), hardlink_entry("top/h", "../outside/secret")}, EINVAL);
  expect_refused({file("top/a", "x"), hardlink_entry("top/h", outside_ + "/secret")}, EINVAL);
  // Through a planted symlink to the outside directory.
  expect_refused({symlink_entry("top/d", outside_), hardlink_entry("top/h", "top/d/secret")}, ELOOP);
}

TEST_F(HostileTar, AFileEntryReplacesASymlinkInsteadOfWritingThroughIt) {
  std::string tar = tar_of({symlink_entry("top/s", outside_ + "/secret"), file("top/s", "mine")});
  ASSERT_TRUE(extract_guest(tar, dest_));
  EXPECT_EQ(read_file(dest_ + "/top/s"), "mine");
  struct stat st {};
  ASSERT_EQ(::lstat((dest_ + "/top/s").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  auto h = extract_host(tar, dest_, "top");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(read_file(dest_ + "/top/s"), "mine");
  expect_outside_untouched();
}

TEST_F(HostileTar, HostExtractorKeepsToTheRequestedName) {
  auto h = extract_host(tar_of({file("top/a", "x"), file("other", "y")}), dest_, "top");
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, EINVAL) << h.error().message;
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/other"));
}

TEST_F(HostileTar, HostExtractorDropsSetuidBitsByDefault) {
  Entry e = file("top", "#!/bin/sh\n");
  e.h.mode = 04755;
  ASSERT_TRUE(extract_host(tar_of({e}), dest_, "top"));
  struct stat st {};
  ASSERT_EQ(::stat((dest_ + "/top").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(HostileTar, TruncatedAndCorruptArchivesAreErrors) {
  std::string tar = tar_of({file("top/a", std::string(5000, 'x'))}, /*trailer=*/false);
  std::string cut = tar.substr(0, 2048);
  EXPECT_FALSE(extract_guest(cut, dest_));
  EXPECT_FALSE(extract_host(cut, dest_, "top"));

  std::string bad = tar_of({file("top/b", "x")});
  bad[0] = 'X';  // checksum no longer matches
  auto g = extract_guest(bad, dest_);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code, EINVAL);
  EXPECT_FALSE(extract_host(bad, dest_, "top"));
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/Xop/b"));

  // An oversized pax header is refused before it is buffered.
  TarHeader x;
  x.typeflag = 'x';
  x.name = "pax";
  x.size = 1 << 30;
  std::string huge;
  agent::encode_tar_header(x, huge);
  auto p = extract_guest(huge, dest_);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, E2BIG);

  // A component longer than NAME_MAX is refused by name, not by the filesystem.
  auto n = extract_guest(tar_of({file("top/" + std::string(300, 'n'), "x")}), dest_);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ENAMETOOLONG);
}

}  // namespace
}  // namespace moat
