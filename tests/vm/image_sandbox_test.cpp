// Sandboxes from OCI images pulled from a local registry: the Debian +
// python3 fixture (tests/fixtures/make-debian-python.sh) and an image
// derived from it with Env, WorkingDir, User, Entrypoint and Cmd set.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <set>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "image/fixture_harness.h"
#include "image/registry_harness.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;
namespace it = moat::image::testing;

class VmImageSandbox : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = test_home() + "/image-fixtures";
    std::filesystem::create_directories(scratch_);
    std::string err;
    std::string layout = it::debian_python_layout(scratch_, &err);
    ASSERT_FALSE(layout.empty()) << err;
    std::string derived = scratch_ + "/derived";
    auto d = it::run({"python3", std::string(MOAT_VM_TEST_DIR) + "/derive_image.py", layout, "python3", derived, "app",
                      "--env", "GREETING=hello from the image", "--env", "PYTHONDONTWRITEBYTECODE=2", "--workdir",
                      "/srv/app/", "--user", "nobody", "--entrypoint", "[\"python3\", \"-c\"]", "--cmd",
                      "[\"print('cmd of the image')\"]"},
                     {}, scratch_);
    ASSERT_EQ(d.exit_code, 0) << d.err;
    registry_ = new it::LocalRegistry();
    std::string started = registry_->start(scratch_ + "/registry");
    ASSERT_EQ(started, "") << started;
    python_ = registry_->host() + "/test/debian-python3:latest";
    app_ = registry_->host() + "/test/app:1";
    auto p1 = it::skopeo_push(layout, "python3", python_, scratch_);
    ASSERT_EQ(p1.exit_code, 0) << p1.err;
    auto p2 = it::skopeo_push(derived, "app", app_, scratch_);
    ASSERT_EQ(p2.exit_code, 0) << p2.err;
  }
  static void TearDownTestSuite() {
    if (registry_) registry_->stop();
    delete registry_;
    registry_ = nullptr;
  }

  static std::string scratch_;
  static it::LocalRegistry* registry_;
  static std::string python_;
  static std::string app_;
};

std::string VmImageSandbox::scratch_;
it::LocalRegistry* VmImageSandbox::registry_ = nullptr;
std::string VmImageSandbox::python_;
std::string VmImageSandbox::app_;

std::string trimmed(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// False once `pid` has ended, reaped or not (a zombie has ended).
bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return sha256_hex(ss.str());
}

TEST_F(VmImageSandbox, RunsPythonFromTheDebianImage) {
  auto o = run_moat({"run", "--insecure", python_, "--", "python3", "-c", "import sys; print(sys.version)"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(std::regex_match(o.out, std::regex("3\\.11\\.[0-9]+ \\(main, [^\n]*\\) \\[GCC [^\n]*\\]\n"))) << o.out;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST_F(VmImageSandbox, ImageConfigGivesCommandEnvWorkdirAndUser) {
  // Entrypoint + Cmd of the image.
  auto cmd = run_moat({"run", "--insecure", app_});
  EXPECT_EQ(cmd.exit_code, 0) << cmd.err;
  EXPECT_EQ(cmd.out, "cmd of the image\n");
  // A command replaces Cmd only; --entrypoint replaces the entrypoint.
  auto args = run_moat({"run", "--insecure", app_, "import os; print(os.environ['GREETING'], os.getcwd(), os.getuid())"});
  EXPECT_EQ(args.exit_code, 0) << args.err;
  EXPECT_EQ(args.out, "hello from the image /srv/app 65534\n");
  auto ep = run_moat({"run", "--insecure", "--entrypoint", "/bin/sh", app_, "-c",
                      "echo $GREETING; echo $PYTHONDONTWRITEBYTECODE; pwd; id -un; cat /etc/hostname"});
  EXPECT_EQ(ep.exit_code, 0) << ep.err;
  std::string out = ep.out;
  EXPECT_EQ(out.substr(0, out.find("moat-")), "hello from the image\n2\n/srv/app\nnobody\n") << out;

  // A named sandbox keeps those defaults for every exec; flags override them.
  auto created = run_moat({"create", "--insecure", "--name", "appbox", app_});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_EQ(run_moat({"start", "appbox"}).exit_code, 0);
  auto e1 = run_moat({"exec", "appbox", "--", "sh", "-c", "pwd; id -un; echo $GREETING"});
  EXPECT_EQ(e1.out, "/srv/app\nnobody\nhello from the image\n") << e1.err;
  auto e2 = run_moat({"exec", "-w", "/tmp", "-u", "root", "-e", "GREETING=overridden", "appbox", "--", "sh", "-c",
                      "pwd; id -un; echo $GREETING"});
  EXPECT_EQ(e2.out, "/tmp\nroot\noverridden\n") << e2.err;
  auto info = Json::parse(run_moat({"inspect", "appbox"}).out, nullptr, false);
  ASSERT_TRUE(info.is_array());
  EXPECT_EQ(info[0]["image"], app_);
  EXPECT_EQ(info[0]["workdir"], "/srv/app");
  EXPECT_EQ(info[0]["user"], "nobody");
  EXPECT_EQ(info[0]["command"], Json::array({"python3", "-c", "print('cmd of the image')"}));
  EXPECT_EQ(run_moat({"rm", "-f", "appbox"}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// A snapshot pins its image by digest: untagged and pruned, the image stays
// while the snapshot exists, a sandbox made from it has the image's config
// and the snapshot's command and files, and once the snapshot is removed a
// prune takes the image.
TEST_F(VmImageSandbox, ASnapshotKeepsItsImageAndItsCommand) {
  ASSERT_EQ(run_moat({"create", "--insecure", "--name", "snapsrc", app_, "print(open('/srv/app/state').read())"}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "snapsrc"}).exit_code, 0);
  auto w = run_moat({"exec", "-u", "root", "snapsrc", "--", "sh", "-c", "echo kept > /srv/app/state"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto s = run_moat({"snapshot", "create", "snapsrc", "app-snap"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto digest = inspected_field("snapsrc", "image_digest");
  ASSERT_EQ(run_moat({"rm", "-f", "snapsrc"}).exit_code, 0);
  ASSERT_EQ(run_moat({"image", "rm", app_}).exit_code, 0);
  ASSERT_EQ(run_moat({"image", "prune"}).exit_code, 0);

  auto r = run_moat({"run", "--from-snapshot", "app-snap"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kept\n\n");
  auto env = run_moat({"run", "--from-snapshot", "app-snap", "--entrypoint", "/bin/sh", "--", "-c",
                       "pwd; id -un; echo $GREETING"});
  EXPECT_EQ(env.out, "/srv/app\nnobody\nhello from the image\n") << env.err;
  auto info = Json::parse(run_moat({"snapshot", "inspect", "app-snap"}).out, nullptr, false);
  ASSERT_TRUE(info.is_array());
  EXPECT_EQ(info[0]["image"], app_);
  EXPECT_EQ(info[0]["image_digest"], digest);

  ASSERT_EQ(run_moat({"snapshot", "rm", "app-snap"}).exit_code, 0);
  ASSERT_EQ(run_moat({"image", "prune"}).exit_code, 0);
  auto gone = run_moat({"run", "--pull", "never", digest, "--", "true"});
  EXPECT_EQ(gone.exit_code, 125);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// JSON lines of tests/vm/tree_listing.py by path; mount points apart.
struct Listing {
  std::map<std::string, Json> entries;
  std::set<std::string> mounts;
};

Listing parse_listing(const std::string& text) {
  Listing l;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto j = Json::parse(line);
    std::string path = j["path"];
    if (j.contains("mount")) l.mounts.insert(path);
    else l.entries[path] = j;
  }
  return l;
}

std::string parent_of(const std::string& p) {
  auto slash = p.rfind('/');
  return slash == 0 ? "/" : p.substr(0, slash);
}

bool is_dir(const Json& e) { return e["type"] == 0040000; }

bool under_any(const std::string& p, const std::set<std::string>& tops) {
  for (const auto& t : tops)
    if (p == t || p.rfind(t + "/", 0) == 0) return true;
  return false;
}

// What differs between the guest's listing and another of the same tree:
// entries missing, different or extra (those below the guest's mount points
// aside), at most ten named.
std::vector<std::string> listing_differences(const Listing& want, const Listing& got, const Listing& guest) {
  std::vector<std::string> differ;
  for (const auto& [p, e] : want.entries) {
    auto o = got.entries.find(p);
    if (o == got.entries.end()) differ.push_back("missing " + p);
    else if (o->second != e) differ.push_back("differs " + e.dump() + " / " + o->second.dump());
  }
  for (const auto& [p, e] : got.entries)
    if (!want.entries.count(p) && !under_any(p, guest.mounts)) differ.push_back("extra " + p);
  if (differ.size() > 10) differ.resize(10);
  return differ;
}

// What `moat diff` must say, from the image's tree and the guest's: every
// new path A, every changed one C, and D for each removed path whose parent
// is still the directory it was.
std::set<std::string> expected_changes(const Listing& before, const Listing& after) {
  std::set<std::string> out;
  for (const auto& [p, e] : after.entries) {
    auto b = before.entries.find(p);
    if (b == before.entries.end()) out.insert("A " + p);
    else if (b->second != e) out.insert("C " + p);
  }
  for (const auto& [p, e] : before.entries) {
    if (after.entries.count(p) || under_any(p, after.mounts)) continue;
    std::string parent = parent_of(p);
    bool parent_kept = parent == "/" || (after.entries.count(parent) && is_dir(after.entries.at(parent)));
    if (parent_kept) out.insert("D " + p);
  }
  return out;
}

// The guest changes, deletes and replaces files and directories (a directory
// removed and made again, a file turned into a directory and back, a renamed
// directory, hardlinks, an xattr, owner and mode changes); `moat diff` of the
// running sandbox, then of the stopped one, is exactly what comparing the
// image's tree with the guest's own listing says, and `moat export`
// extracted on the host lists exactly as the guest's root does.
TEST_F(VmImageSandbox, DiffAndExportAreExactAgainstTheGuestsOwnView) {
  std::string listing_py = std::string(MOAT_VM_TEST_DIR) + "/tree_listing.py";
  // The image's tree, as its EROFS serves it.
  ASSERT_EQ(run_moat({"image", "pull", "--insecure", python_}).exit_code, 0);
  std::string mnt = scratch_ + "/diff-image";
  std::filesystem::create_directories(mnt);
  auto mounted = run_moat({"image", "mount", python_, mnt});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  auto before_run = it::run({"python3", listing_py, mnt}, {}, scratch_);
  run_moat({"image", "umount", mnt});
  ASSERT_EQ(before_run.exit_code, 0) << before_run.err;
  Listing before = parse_listing(before_run.out);
  ASSERT_GT(before.entries.size(), 1000u);

  ASSERT_EQ(run_moat({"create", "--insecure", "--name", "differ", python_}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "differ"}).exit_code, 0);
  auto changed = run_moat({"exec", "differ", "--", "sh", "-ec",
                           "echo new > /etc/debian_version\n"
                           "chmod 600 /etc/issue\n"
                           "chown 1000:1000 /etc/issue.net\n"
                           "rm /etc/motd\n"
                           "rm -r /usr/share/doc/bash\n"
                           "rm -r /usr/share/doc/coreutils; mkdir /usr/share/doc/coreutils; echo n > /usr/share/doc/coreutils/new\n"
                           "rm /etc/debconf.conf; mkdir /etc/debconf.conf; echo y > /etc/debconf.conf/inner\n"
                           "rm -r /etc/skel; echo z > /etc/skel\n"
                           "mv /usr/share/doc/dash /usr/share/doc/dash2\n"
                           "ln /usr/bin/python3.11 /root/py\n"
                           "echo h > /root/h1; ln /root/h1 /root/h2\n"
                           "ln -s /etc/passwd /root/sym\n"
                           "mkdir -p /srv/new/deep; echo d > /srv/new/deep/f\n"
                           "touch -m -d 2001-02-03T04:05:06 /etc/shells\n"
                           "python3 -c \"import os; os.setxattr('/etc/host.conf', 'user.moat', b'v')\"\n"});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  std::ifstream script(listing_py);
  std::stringstream text;
  text << script.rdbuf();
  auto after_run = run_moat({"exec", "differ", "--", "python3", "-c", text.str(), "/"});
  ASSERT_EQ(after_run.exit_code, 0) << after_run.err;
  Listing after = parse_listing(after_run.out);
  std::set<std::string> want = expected_changes(before, after);
  for (const char* line : {"C /etc/debian_version", "C /etc/issue", "C /etc/issue.net", "D /etc/motd",
                           "D /usr/share/doc/bash", "C /usr/share/doc/coreutils", "A /usr/share/doc/coreutils/new",
                           "C /etc/debconf.conf", "A /etc/debconf.conf/inner", "C /etc/skel",
                           "D /usr/share/doc/dash", "A /usr/share/doc/dash2", "A /root/py", "A /root/h2",
                           "A /root/sym", "A /srv/new/deep/f", "C /etc/shells", "C /etc/host.conf"}) {
    EXPECT_TRUE(want.count(line)) << "the oracle misses " << line;
  }

  for (bool running : {true, false}) {
    if (!running) {
      ASSERT_EQ(run_moat({"stop", "differ"}).exit_code, 0);
    }
    auto diff = run_moat({"diff", "differ", "--format", "json"});
    ASSERT_EQ(diff.exit_code, 0) << diff.err;
    std::set<std::string> got;
    for (const auto& c : Json::parse(diff.out)) {
      std::string path = c["path"];
      if (under_any(path, after.mounts)) continue;  // the guest cannot see those
      got.insert(c["kind"].get<std::string>() + " " + path);
    }
    std::vector<std::string> missing, extra;
    std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
    std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
    EXPECT_TRUE(missing.empty() && extra.empty())
        << (running ? "running" : "stopped") << ": missing " << ::testing::PrintToString(missing) << ", extra "
        << ::testing::PrintToString(extra);

    std::string tar = scratch_ + "/export.tar", dir = scratch_ + (running ? "/export-running" : "/export-stopped");
    auto exported = run_moat({"export", "differ", "-o", tar});
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    std::filesystem::create_directories(dir);
    auto x = it::run({"tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tar, "-C", dir}, {}, scratch_);
    ASSERT_EQ(x.exit_code, 0) << x.err;
    auto listed = it::run({"python3", listing_py, dir}, {}, scratch_);
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    auto differ = listing_differences(after, parse_listing(listed.out), after);
    EXPECT_TRUE(differ.empty()) << (running ? "running: " : "stopped: ") << ::testing::PrintToString(differ);
    struct stat h1 {}, h2 {};
    ASSERT_EQ(::lstat((dir + "/root/h1").c_str(), &h1), 0);
    ASSERT_EQ(::lstat((dir + "/root/h2").c_str(), &h2), 0);
    EXPECT_EQ(h1.st_ino, h2.st_ino) << "the hard link was not kept";
    std::filesystem::remove_all(dir);
  }

  // The commit: a sandbox of the new image, and umoci's unpacking of it as
  // saved, list as the guest's root did, but for what every boot writes
  // anew (and the mtime of /etc, whose entries those are).
  auto committed = run_moat({"commit", "differ", "local/committed:1", "-c", "CMD [\"sh\"]", "-m", "the test's"});
  ASSERT_EQ(committed.exit_code, 0) << committed.err;
  auto comparable = [](Listing l) {
    for (const char* p : {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}) l.entries.erase(p);
    if (l.entries.count("/etc")) l.entries["/etc"].erase("mtime");
    return l;
  };
  auto compare = [&](const Listing& got, const char* what) {
    auto differ = listing_differences(comparable(after), comparable(got), after);
    EXPECT_TRUE(differ.empty()) << what << ": " << ::testing::PrintToString(differ);
  };
  ASSERT_EQ(run_moat({"create", "--name", "from-commit", "--pull", "never", "local/committed:1"}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "from-commit"}).exit_code, 0);
  auto relisted = run_moat({"exec", "from-commit", "--", "python3", "-c", text.str(), "/"});
  ASSERT_EQ(relisted.exit_code, 0) << relisted.err;
  compare(parse_listing(relisted.out), "a sandbox of the committed image");
  auto inodes = run_moat({"exec", "from-commit", "--", "sh", "-c", "stat -c %i /root/h1 /root/h2 | uniq | wc -l"});
  EXPECT_EQ(inodes.out, "1\n") << "the hard link was not kept";
  auto info = Json::parse(run_moat({"inspect", "from-commit"}).out, nullptr, false);
  EXPECT_EQ(info[0]["command"], Json::array({"sh"}));
  EXPECT_EQ(run_moat({"rm", "-f", "from-commit"}).exit_code, 0);

  std::string saved = scratch_ + "/committed.tar", layout = scratch_ + "/committed-layout";
  ASSERT_EQ(run_moat({"image", "save", "--format", "oci", "-o", saved, "local/committed:1"}).exit_code, 0);
  auto inspect = it::run({"skopeo", "inspect", "oci-archive:" + saved}, {}, scratch_);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  auto base = Json::parse(run_moat({"image", "inspect", python_}).out, nullptr, false);
  if (base.is_array()) base = base[0];
  ASSERT_TRUE(base.is_object() && base["layers"].is_array());
  EXPECT_EQ(Json::parse(inspect.out)["Layers"].size(), base["layers"].size() + 1) << inspect.out;
  std::filesystem::create_directories(layout);
  ASSERT_EQ(it::run({"tar", "-xf", saved, "-C", layout}, {}, scratch_).exit_code, 0);
  auto unpacked = it::run({"umoci", "unpack", "--image", layout + ":1", scratch_ + "/bundle"}, {}, scratch_);
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.err;
  auto umoci_listing = it::run({"python3", listing_py, scratch_ + "/bundle/rootfs"}, {}, scratch_);
  ASSERT_EQ(umoci_listing.exit_code, 0) << umoci_listing.err;
  compare(parse_listing(umoci_listing.out), "umoci unpack of the committed image");

  // podman loads the same archive (its own store in the scratch directory,
  // plain directories, nothing of the machine's), and its root lists alike.
  std::string pstore = scratch_ + "/podman";
  auto podman = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"podman",         "--root",          pstore + "/root",
                                     "--runroot",      pstore + "/run",   "--storage-driver",
                                     "vfs",            "--cgroup-manager", "cgroupfs",
                                     "--events-backend", "none"};
    argv.insert(argv.end(), args.begin(), args.end());
    return it::run(argv, {}, scratch_);
  };
  auto loaded = podman({"load", "-q", "-i", saved});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
  auto ids = podman({"images", "-q", "--no-trunc"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  std::string image_id = trimmed(ids.out);
  ASSERT_EQ(image_id.find('\n'), std::string::npos) << "one image expected: " << ids.out;
  auto pmounted = podman({"image", "mount", image_id});
  ASSERT_EQ(pmounted.exit_code, 0) << pmounted.err;
  auto podman_listing = it::run({"python3", listing_py, trimmed(pmounted.out)}, {}, scratch_);
  ASSERT_EQ(podman_listing.exit_code, 0) << podman_listing.err;
  compare(parse_listing(podman_listing.out), "podman load of the committed image");
  EXPECT_EQ(podman({"image", "unmount", image_id}).exit_code, 0);
  EXPECT_EQ(podman({"rmi", "-f", image_id}).exit_code, 0);
  std::filesystem::remove_all(pstore);
  EXPECT_EQ(run_moat({"rm", "differ"}).exit_code, 0);
}

// kill -9 of a commit at moments from its start to its end: afterwards the
// name leads to a whole image or to none; no reader process outlives it, and
// what a killed one wrote is scratch that prune clears.
TEST_F(VmImageSandbox, AKilledCommitLeavesAWholeImageOrNone) {
  ASSERT_EQ(run_moat({"create", "--insecure", "--name", "victim", python_}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "victim"}).exit_code, 0);
  auto w = run_moat({"exec", "victim", "--", "sh", "-c", "head -c 24000000 /dev/urandom > /root/data && mkdir /root/d"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  ASSERT_EQ(run_moat({"stop", "victim"}).exit_code, 0);
  // One whole commit, timed, so the kills land across a commit's length.
  auto t0 = std::chrono::steady_clock::now();
  auto timed = run_moat({"commit", "victim", "local/killed:timed"});
  ASSERT_EQ(timed.exit_code, 0) << timed.err;
  auto length = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_EQ(run_moat({"image", "rm", "local/killed:timed"}).exit_code, 0);
  std::string incoming = test_home() + "/blobs/incoming";
  int whole = 0;
  for (int percent : {0, 5, 20, 45, 70, 90}) {
    std::string ref = "local/killed:" + std::to_string(percent);
    auto r = spawn_moat({"commit", "victim", ref});
    std::this_thread::sleep_for(length * percent / 100);
    auto children = it::run({"pgrep", "-P", std::to_string(r.pid)}, {}, scratch_);
    ::kill(r.pid, SIGKILL);
    finish(r, 60);
    // Its root reader, if it had one then, dies with it.
    std::istringstream pids(children.out);
    for (std::string pid; pids >> pid;) {
      bool gone = false;
      for (int i = 0; i < 200 && !gone; ++i) {
        gone = !process_alive(std::stoi(pid));
        if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(gone) << "process " << pid << " outlived the commit killed at " << percent << "%";
    }
    auto inspected = run_moat({"image", "inspect", ref});
    if (inspected.exit_code != 0) {
      EXPECT_NE(inspected.err.find("no such image"), std::string::npos) << ref << ": " << inspected.err;
      continue;
    }
    ++whole;
    // Listed means whole: saving it reads and checks every blob.
    auto saved = run_moat({"image", "save", "--format", "oci", "-o", scratch_ + "/killed.tar", ref});
    EXPECT_EQ(saved.exit_code, 0) << ref << ": " << saved.err;
    ASSERT_EQ(run_moat({"image", "rm", ref}).exit_code, 0);
  }
  EXPECT_LT(whole, 6) << "no kill landed before the commit ended";
  // What the killed commits wrote ages out of blobs/incoming.
  for (const auto& name : dir_entries(incoming)) {
    std::string path = incoming + "/" + name;
    struct timeval old[2] = {{::time(nullptr) - 7200, 0}, {::time(nullptr) - 7200, 0}};
    ::utimes(path.c_str(), old);
  }
  ASSERT_EQ(run_moat({"image", "prune"}).exit_code, 0);
  EXPECT_TRUE(dir_entries(incoming).empty()) << ::testing::PrintToString(dir_entries(incoming));
  std::filesystem::remove(scratch_ + "/killed.tar");
  EXPECT_EQ(run_moat({"rm", "victim"}).exit_code, 0);
}

TEST_F(VmImageSandbox, SandboxesOfOneImageShareAReadOnlyRootAndNotTheirWrites) {
  std::string a = trimmed(run_moat({"run", "-d", "--insecure", "--name", "one", python_}).out);
  std::string b = trimmed(run_moat({"run", "-d", "--insecure", "--name", "two", python_}).out);
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  auto img = Json::parse(run_moat({"image", "inspect", python_}).out, nullptr, false);
  ASSERT_TRUE(img.is_object()) << img.dump();
  std::string erofs = img.value("erofs", "");
  ASSERT_FALSE(erofs.empty()) << img.dump();
  std::string before = file_sha256(erofs);
  for (const auto& id : {a, b}) {
    // The shim opens the disks and QEMU inherits them: the image's EROFS
    // must reach QEMU open for reading only, and its drive be read-only.
    pid_t qemu = qemu_of(test_home() + "/sandboxes/" + id);
    ASSERT_GT(qemu, 0) << id;
    int erofs_fds = 0;
    for (const auto& fd : dir_entries("/proc/" + std::to_string(qemu) + "/fd")) {
      char target[4096];
      ssize_t n = ::readlink(("/proc/" + std::to_string(qemu) + "/fd/" + fd).c_str(), target, sizeof target);
      if (n <= 0 || std::string(target, static_cast<std::size_t>(n)) != erofs) continue;
      ++erofs_fds;
      std::ifstream info("/proc/" + std::to_string(qemu) + "/fdinfo/" + fd);
      std::string key, flags;
      while (info >> key >> flags && key != "flags:") {
      }
      EXPECT_EQ(std::stoul(flags, nullptr, 8) & O_ACCMODE, static_cast<unsigned long>(O_RDONLY)) << id << " fd " << fd;
    }
    EXPECT_GE(erofs_fds, 1) << id;  // the inherited one, and QEMU's own copy from its fd set
    std::ifstream cmd(test_home() + "/sandboxes/" + id + "/qemu.cmdline");
    std::string line, drive;
    while (std::getline(cmd, line))
      if (line.find(",id=disk0,") != std::string::npos) drive = line;  // the lower disk comes first
    EXPECT_NE(drive.find(",readonly=on"), std::string::npos) << "lower drive of " << id << ": " << drive;
  }
  auto w = run_moat({"exec", "one", "--", "sh", "-c", "echo mine > /etc/only-one && rm /etc/debian_version"});
  EXPECT_EQ(w.exit_code, 0) << w.err;
  EXPECT_EQ(run_moat({"exec", "two", "--", "cat", "/etc/only-one"}).exit_code, 1);
  EXPECT_EQ(run_moat({"exec", "two", "--", "test", "-f", "/etc/debian_version"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "one", "--", "test", "-f", "/etc/debian_version"}).exit_code, 1);
  ASSERT_EQ(run_moat({"restart", "one"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "one", "--", "cat", "/etc/only-one"}).out, "mine\n");
  EXPECT_EQ(run_moat({"rm", "-f", "one", "two"}).exit_code, 0);
  EXPECT_EQ(file_sha256(erofs), before) << "the image's EROFS changed";
}

// A python3 process started before a memory snapshot goes on in every
// child with the variables it had: it drew a random secret once, and keeps
// writing it with a count that goes on in each child. The file is in RAM
// too, so only a count that still grows proves the process runs.
TEST_F(VmImageSandbox, APythonProcessGoesOnInEveryChildOfAMemorySnapshot) {
  ASSERT_EQ(run_moat({"run", "-d", "--insecure", "--name", "pysrc", python_}).exit_code, 0);
  const std::string script =
      "import os, time\n"
      "if os.fork(): os._exit(0)\n"
      "os.setsid()\n"
      "null = os.open('/dev/null', os.O_RDWR)\n"
      "for fd in range(3): os.dup2(null, fd)\n"
      "secret = os.urandom(8).hex()\n"
      "n = 0\n"
      "while True:\n"
      "    n += 1\n"
      "    open('/dev/shm/py.tmp', 'w').write(secret + ' ' + str(n))\n"
      "    os.rename('/dev/shm/py.tmp', '/dev/shm/py')\n"
      "    time.sleep(0.2)\n";
  auto started = run_moat({"exec", "pysrc", "--", "python3", "-c", script});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  // "SECRET N" as the process last wrote it.
  auto state_of = [](const std::string& name) -> std::pair<std::string, long long> {
    auto o = run_moat({"exec", name, "--", "cat", "/dev/shm/py"});
    auto space = o.out.find(' ');
    if (o.exit_code != 0 || space == std::string::npos) return {"", -1};
    return {o.out.substr(0, space), std::atoll(o.out.c_str() + space + 1)};
  };
  for (int i = 0; i < 100 && state_of("pysrc").second < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto made = run_moat({"snapshot", "create", "--memory", "pysrc", "py-snap"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto [secret, at_snapshot] = state_of("pysrc");
  ASSERT_EQ(secret.size(), 16u);
  const std::vector<std::string> children = {"py-1", "py-2", "py-3"};
  std::vector<std::future<Outcome>> runs;
  for (const auto& c : children)
    runs.push_back(std::async(std::launch::async, [c] {
      return run_moat({"run", "-d", "--name", c, "--from-snapshot", "py-snap"});
    }));
  for (auto& r : runs) {
    auto o = r.get();
    ASSERT_EQ(o.exit_code, 0) << o.err;
  }
  for (const auto& c : children) {
    auto [theirs, n] = state_of(c);
    EXPECT_EQ(theirs, secret) << c << " has another process's variable";
    EXPECT_GE(n, at_snapshot) << c;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    auto [still, later] = state_of(c);
    EXPECT_EQ(still, secret) << c;
    EXPECT_GT(later, n) << c << "'s python3 process does not run";
  }
  for (const auto& c : children) EXPECT_EQ(run_moat({"rm", "-f", c}).exit_code, 0);
  EXPECT_EQ(run_moat({"snapshot", "rm", "py-snap"}).exit_code, 0);
  EXPECT_EQ(run_moat({"rm", "-f", "pysrc"}).exit_code, 0);
}

TEST_F(VmImageSandbox, PatchesLandBeforeTheFirstBoot) {
  std::string host = scratch_ + "/patch-src";
  std::filesystem::create_directories(host + "/tree/sub");
  std::ofstream(host + "/tree/sub/file") << "from the host\n";
  std::string big = random_bytes(100u << 20);
  std::ofstream(host + "/big.bin", std::ios::binary) << big;
  auto o = run_moat({"run", "--insecure", "--copy", host + "/tree:/opt/tree", "--write", "/etc/motd=patched",
                     "--mkdir", "/data", "--copy", host + "/big.bin:/data/big.bin", "--chown", "1000:1000",
                     "--delete", "/etc/debian_version", python_, "--", "sh", "-c",
                     "cat /opt/tree/sub/file /etc/motd; echo; stat -c '%u:%g %a' /data /etc/motd; "
                     "test -e /etc/debian_version || echo gone; stat -c '%a' /tmp; sha256sum /data/big.bin"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "from the host\npatched\n1000:1000 755\n1000:1000 644\ngone\n1777\n" + sha256_hex(big) +
                       "  /data/big.bin\n");
}

TEST_F(VmImageSandbox, BadImagesAndPolicyAreClearErrors) {
  auto never = run_moat({"run", "--pull", "never", "--insecure", registry_->host() + "/test/absent:1", "--", "true"});
  EXPECT_EQ(never.exit_code, 125);
  EXPECT_NE(never.err.find("is not in the local store and --pull is never"), std::string::npos) << never.err;
  auto unknown = run_moat({"run", "--insecure", registry_->host() + "/test/absent:1", "--", "true"});
  EXPECT_EQ(unknown.exit_code, 125);
  EXPECT_NE(unknown.err.find("pull " + registry_->host() + "/test/absent:1"), std::string::npos) << unknown.err;
  auto policy = run_moat({"run", "--pull", "sometimes", python_, "--", "true"});
  EXPECT_EQ(policy.exit_code, 125);
  EXPECT_NE(policy.err.find("--pull sometimes: expected always, missing or never"), std::string::npos);
  auto entry = run_moat({"run", "--insecure", "--entrypoint", "/no/such/program", python_});
  EXPECT_EQ(entry.exit_code, 127) << entry.err;
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
