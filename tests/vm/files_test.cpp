// File operations in a running sandbox: `moat cp` both ways (a large file
// byte-exact, a tree with every attribute), guest symlinks that must not lead
// host writes out of the target, the C++ file API, and a full upper disk.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "moat/sandbox.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

namespace fs = std::filesystem;

std::string scratch(const std::string& name) {
  std::string dir = test_home() + "/files-" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void put(const std::string& path, const std::string& data, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << data;
  ::chmod(path.c_str(), mode);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void set_mtime(const std::string& path, time_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  ::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

// Type, mode, mtime, size, contents, link targets and shared inodes of
// everything below `dir`.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::map<ino_t, std::string> inodes;
  std::vector<std::string> names;
  for (auto& e : fs::recursive_directory_iterator(dir)) names.push_back(e.path().string());
  std::sort(names.begin(), names.end());
  for (const auto& p : names) {
    struct stat st {};
    ::lstat(p.c_str(), &st);
    std::string rel = p.substr(dir.size());
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " mtime=" << st.st_mtim.tv_sec;
    if (S_ISREG(st.st_mode)) {
      d << " size=" << st.st_size << " sha=" << sha256_hex(slurp(p));
      if (st.st_nlink > 1) d << " inode-of=" << inodes.emplace(st.st_ino, rel).first->second;
    }
    if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(p).string();
    out[rel] = d.str();
  }
  return out;
}

void make_tree(const std::string& t) {
  fs::create_directories(t);
  put(t + "/file.txt", "hello\n", 0640);
  put(t + "/empty", "", 0600);
  put(t + "/run.sh", "#!/bin/sh\necho hi\n", 0755);
  put(t + "/data.bin", random_bytes(300 * 1024 + 7), 0644);
  fs::create_directories(t + "/sub/empty-dir");
  ::chmod((t + "/sub/empty-dir").c_str(), 0555);
  ::chmod((t + "/sub").c_str(), 0700);
  ::link((t + "/file.txt").c_str(), (t + "/sub/hardlink").c_str());
  fs::create_symlink("file.txt", t + "/rel-link");
  fs::create_symlink("/etc/passwd", t + "/abs-link");
  fs::create_symlink("../../nowhere", t + "/dangling");
  std::string long_dir = t + "/" + std::string(110, 'd');
  fs::create_directories(long_dir);
  put(long_dir + "/" + std::string(200, 'f'), "long name\n");
  time_t when = 1650000000;
  for (const auto& p : {"/file.txt", "/empty", "/run.sh", "/data.bin", "/rel-link", "/abs-link", "/dangling"})
    set_mtime(t + p, when++);
  set_mtime(long_dir + "/" + std::string(200, 'f'), when++);
  set_mtime(long_dir, when++);
  set_mtime(t + "/sub/empty-dir", when++);
  set_mtime(t + "/sub", when++);
  set_mtime(t, when++);
}

Outcome exec_in(const std::string& id, const std::vector<std::string>& cmd) {
  std::vector<std::string> args = {"exec", id, "--"};
  args.insert(args.end(), cmd.begin(), cmd.end());
  return run_moat(args);
}

TEST(VmFiles, CopyInAndOutIsByteExactForALargeFileAndATree) {
  std::string id = create_sandbox();
  std::string dir = scratch("cp");

  // 100 MiB of random bytes in and out.
  std::string big = random_bytes(100u << 20);
  std::string want = sha256_hex(big);
  put(dir + "/big", big);
  big.clear();
  ASSERT_EQ(exec_in(id, {"mkdir", "/data"}).exit_code, 0);
  auto in = run_moat({"cp", dir + "/big", id + ":/data/big"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  auto sum = exec_in(id, {"sha256sum", "/data/big"});
  ASSERT_EQ(sum.exit_code, 0) << sum.err;
  EXPECT_EQ(sum.out.substr(0, 64), want);
  auto out = run_moat({"cp", id + ":/data/big", dir + "/big-back"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(sha256_hex(slurp(dir + "/big-back")), want);
  std::printf("[ bench    ] cp 100 MiB in: %.2f s, out: %.2f s\n", in.seconds, out.seconds);
  fs::remove(dir + "/big");
  fs::remove(dir + "/big-back");
  ASSERT_EQ(exec_in(id, {"rm", "/data/big"}).exit_code, 0);

  // A tree: into an existing guest directory it keeps its name; out to a
  // missing host path it takes that name.
  make_tree(dir + "/src/tree");
  auto tin = run_moat({"cp", dir + "/src/tree", id + ":/data"});
  ASSERT_EQ(tin.exit_code, 0) << tin.err;
  auto owners = exec_in(id, {"stat", "-c", "%u:%g %a %h", "/data/tree/file.txt", "/data/tree/sub/empty-dir"});
  EXPECT_EQ(owners.out, "0:0 640 2\n0:0 555 2\n") << owners.err;
  auto tout = run_moat({"cp", id + ":/data/tree", dir + "/back"});
  ASSERT_EQ(tout.exit_code, 0) << tout.err;
  EXPECT_EQ(snapshot(dir + "/back"), snapshot(dir + "/src/tree"));

  // Into an existing host directory: it lands inside as tree/.
  fs::create_directories(dir + "/into");
  ASSERT_EQ(run_moat({"cp", id + ":/data/tree", dir + "/into"}).exit_code, 0);
  EXPECT_EQ(snapshot(dir + "/into/tree"), snapshot(dir + "/src/tree"));

  // Bad input: a missing source, a directory onto a file, no sandbox path.
  auto missing = run_moat({"cp", id + ":/data/nope", dir + "/x"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
  auto onto_file = run_moat({"cp", dir + "/src/tree", id + ":/data/tree/file.txt"});
  EXPECT_EQ(onto_file.exit_code, 125);
  EXPECT_NE(onto_file.err.find("onto file"), std::string::npos) << onto_file.err;
  auto two_host = run_moat({"cp", dir + "/a", dir + "/b"});
  EXPECT_EQ(two_host.exit_code, 125);

  EXPECT_EQ(run_moat({"stop", id}).exit_code, 0);
}

TEST(VmFiles, GuestSymlinksDoNotLeadHostWritesOutOfTheTarget) {
  std::string id = create_sandbox();
  std::string dir = scratch("evil");
  auto made = exec_in(id, {"sh", "-c",
                           "mkdir -p /data/evil && cd /data/evil && ln -s / root && ln -s ../../../.. up && "
                           "ln -s /etc/passwd passwd && echo inside > file"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  fs::create_directories(dir + "/target");
  put(dir + "/canary", "canary");
  auto cp = run_moat({"cp", id + ":/data/evil", dir + "/target"});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  // The links arrive as links; nothing was written through them.
  EXPECT_EQ(fs::read_symlink(dir + "/target/evil/root"), "/");
  EXPECT_EQ(fs::read_symlink(dir + "/target/evil/up"), "../../../..");
  EXPECT_EQ(fs::read_symlink(dir + "/target/evil/passwd"), "/etc/passwd");
  EXPECT_EQ(slurp(dir + "/target/evil/file"), "inside\n");
  std::vector<std::string> top;
  for (auto& e : fs::directory_iterator(dir)) top.push_back(e.path().filename());
  std::sort(top.begin(), top.end());
  EXPECT_EQ(top, (std::vector<std::string>{"canary", "target"}));
  EXPECT_EQ(slurp(dir + "/canary"), "canary");

  // Copying the same tree again over the existing one replaces the links
  // instead of following them.
  ASSERT_EQ(run_moat({"cp", id + ":/data/evil", dir + "/target"}).exit_code, 0);
  EXPECT_EQ(fs::read_symlink(dir + "/target/evil/root"), "/");

  // Into the guest: the destination is resolved as the guest sees it
  // (/data/etc-link -> /etc is a directory, so the tree lands in
  // /etc/planted), but nothing in the copied tree is written through a link.
  ASSERT_EQ(exec_in(id, {"ln", "-s", "/etc", "/data/etc-link"}).exit_code, 0);
  fs::create_directories(dir + "/planted");
  put(dir + "/planted/passwd", "pwned\n");
  auto into = run_moat({"cp", dir + "/planted", id + ":/data/etc-link"});
  ASSERT_EQ(into.exit_code, 0) << into.err;
  EXPECT_EQ(exec_in(id, {"cat", "/etc/planted/passwd"}).out, "pwned\n");
  auto passwd = exec_in(id, {"cat", "/etc/passwd"});
  EXPECT_EQ(passwd.out.find("pwned"), std::string::npos);
  EXPECT_EQ(run_moat({"stop", id}).exit_code, 0);
}

// Copying out: an existing host directory keeps its mode, the guest's 777
// and 666 open nothing to the host's other users, and a tree whose names
// outgrow PATH_MAX is refused by name with nothing left behind.
TEST(VmFiles, CopyOutKeepsHostModesAndRefusesOverlongNames) {
  std::string id = create_sandbox();
  std::string dir = scratch("cp-out");
  auto made = exec_in(id, {"sh", "-c",
                           "mkdir -p /data/open && chmod 777 /data/open && echo x > /data/open/f && "
                           "chmod 666 /data/open/f && mkdir /data/long && cd /data/long && "
                           "for c in a b c d e f g h i j k l m n o p; do "
                           "n=$(head -c 250 /dev/zero | tr '\\0' $c) && mkdir $n && cd $n || exit 1; done && "
                           "mkdir $(head -c 250 /dev/zero | tr '\\0' q)"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  fs::create_directories(dir + "/into/open");
  ::chmod((dir + "/into/open").c_str(), 0700);
  auto merged = run_moat({"cp", id + ":/data/open", dir + "/into"});
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/into/open").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((dir + "/into/open/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  auto fresh = run_moat({"cp", id + ":/data/open", dir + "/fresh"});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  ASSERT_EQ(::stat((dir + "/fresh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);

  auto longer = run_moat({"cp", id + ":/data/long", dir + "/long"});
  EXPECT_EQ(longer.exit_code, 125);
  EXPECT_EQ(longer.err, "moat: copy /data/long to " + dir + "/long: copying from the sandbox: archive entry \"long/" +
                            std::string(195, 'a') + "...\" has a name of 4271 bytes; the limit is 4095\n");
  auto left = dir_entries(dir);
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"fresh", "into"}));
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

TEST(VmFiles, TheApiReadsWritesListsAndChangesFiles) {
  std::string id = create_sandbox();
  ::setenv("MOAT_HOME", test_home().c_str(), 1);
  auto sb = Sandbox::open(id);
  ASSERT_TRUE(sb) << sb.error().message;

  ASSERT_TRUE(sb->mkdir("/data/a/b", /*parents=*/true, 0750));
  std::string payload = random_bytes(700 * 1024 + 3);
  WriteFileOptions wo;
  wo.mode = 0600;
  wo.uid = 1234;
  wo.gid = 55;
  ASSERT_TRUE(sb->write_file("/data/a/b/f", payload, wo));
  auto st = sb->stat("/data/a/b/f");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->type, FileType::kFile);
  EXPECT_EQ(st->size, payload.size());
  EXPECT_EQ(st->mode, 0600u);
  EXPECT_EQ(st->uid, 1234u);
  EXPECT_EQ(st->gid, 55u);

  std::string back;
  ASSERT_TRUE(sb->read_file("/data/a/b/f", [&](std::string_view d) {
    back.append(d);
    return ok_status();
  }));
  EXPECT_EQ(sha256_hex(back), sha256_hex(payload));

  WriteFileOptions append;
  append.append = true;
  ASSERT_TRUE(sb->write_file("/data/a/b/f", "tail", append));
  EXPECT_EQ(sb->stat("/data/a/b/f")->size, payload.size() + 4);
  WriteFileOptions excl;
  excl.exclusive = true;
  auto exists = sb->write_file("/data/a/b/f", "x", excl);
  ASSERT_FALSE(exists);
  EXPECT_EQ(exists.error().code, EEXIST);

  ASSERT_TRUE(sb->rename("/data/a/b/f", "/data/a/g"));
  ASSERT_TRUE(sb->chmod("/data/a/g", 0640));
  ASSERT_TRUE(sb->chown("/data/a/g", 7, std::nullopt));
  auto g = sb->stat("/data/a/g");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->mode, 0640u);
  EXPECT_EQ(g->uid, 7u);
  EXPECT_EQ(g->gid, 55u);

  // A listing of more entries than one batch holds.
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(sb->write_file("/data/a/b/n" + std::to_string(i), ""));
  auto list = sb->list_dir("/data/a/b");
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->size(), 300u);
  auto top = sb->list_dir("/data/a");
  ASSERT_TRUE(top);
  std::map<std::string, FileType> types;
  for (const auto& e : *top) types[e.name] = e.info.type;
  EXPECT_EQ(types, (std::map<std::string, FileType>{{"b", FileType::kDir}, {"g", FileType::kFile}}));

  // Errors carry the guest's errno.
  auto missing = sb->stat("/data/none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  auto dir_read = sb->read_file("/data/a", [](std::string_view) { return ok_status(); });
  ASSERT_FALSE(dir_read);
  EXPECT_EQ(dir_read.error().code, EISDIR);
  auto again = sb->mkdir("/data/a");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, EEXIST);
  auto not_empty = sb->remove("/data/a");
  ASSERT_FALSE(not_empty);
  EXPECT_EQ(not_empty.error().code, ENOTEMPTY);

  ASSERT_TRUE(sb->remove("/data/a", /*recursive=*/true));
  EXPECT_EQ(sb->stat("/data/a").error().code, ENOENT);
  // The handle still runs commands after all of that.
  std::string said;
  ExecIo io;
  io.on_stdout = [&](std::string_view s) { said.append(s); };
  ExecOptions echo;
  echo.argv = {"echo", "still here"};
  auto rc = sb->exec(echo, io);
  ASSERT_TRUE(rc);
  EXPECT_EQ(said, "still here\n");
  EXPECT_TRUE(sb->stop());
}

TEST(VmFiles, AFullUpperDiskIsENOSPCAndTheSandboxKeepsWorking) {
  std::string id = create_sandbox({"--disk-size", "64"});
  std::string dir = scratch("full");
  // 96 MiB of zeros: sparse on the host, real blocks in the guest.
  {
    int fd = ::open((dir + "/zeros").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 96 << 20), 0);
    ::close(fd);
  }
  ASSERT_EQ(exec_in(id, {"mkdir", "/data"}).exit_code, 0);
  auto cp = run_moat({"cp", dir + "/zeros", id + ":/data/zeros"});
  EXPECT_EQ(cp.exit_code, 125);
  EXPECT_NE(cp.err.find("No space left on device"), std::string::npos) << cp.err;

  // The sandbox still works: commands run, and after freeing space a copy succeeds.
  auto echo = exec_in(id, {"echo", "alive"});
  EXPECT_EQ(echo.exit_code, 0);
  EXPECT_EQ(echo.out, "alive\n");
  ASSERT_EQ(exec_in(id, {"rm", "-f", "/data/zeros"}).exit_code, 0);
  put(dir + "/small", "small\n");
  ASSERT_EQ(run_moat({"cp", dir + "/small", id + ":/data/small"}).exit_code, 0);
  EXPECT_EQ(exec_in(id, {"cat", "/data/small"}).out, "small\n");
  EXPECT_EQ(run_moat({"stop", id}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
