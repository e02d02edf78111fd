// Disk snapshots and forks: a chain of snapshot/restore cycles that loses
// nothing, consistent copies of a disk the guest is writing, kill -9 in the
// middle of a create, damaged snapshot files refused, ten isolated forks, the
// guest's freeze released when its holder goes away or its time runs out.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "proto/message.h"
#include "sandbox/agent_connection.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;

std::string snapshots_root() { return test_home() + "/snapshots"; }

std::string sandbox_id(const std::string& name) { return inspected_field(name, "id"); }

// `moat exec NAME -- sh -c SCRIPT`: its stdout, and the test fails unless it exits 0.
std::string in_guest(const std::string& name, const std::string& script) {
  auto o = run_moat({"exec", name, "--", "sh", "-c", script});
  EXPECT_EQ(o.exit_code, 0) << name << ": " << script << ": " << o.err;
  return o.out;
}

void ok(const std::vector<std::string>& args) {
  auto o = run_moat(args);
  ASSERT_EQ(o.exit_code, 0) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << o.err;
}

Json snapshot_list() {
  auto o = run_moat({"snapshot", "ls", "--format", "json"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto j = Json::parse(o.out, nullptr, false);
  return j.is_array() ? j : Json::array();
}

std::set<std::string> listed_ids() {
  std::set<std::string> ids;
  for (const auto& s : snapshot_list()) ids.insert(s.at("id").get<std::string>());
  return ids;
}

std::string sandboxes_root() { return test_home() + "/sandboxes"; }

// Ages the directories under `root` that `keep` does not name, so the next
// look removes them as a dead create's instead of waiting seconds for that.
void age_unowned_dirs(const std::string& root, const std::set<std::string>& keep) {
  for (const auto& d : dir_entries(root)) {
    if (keep.count(d)) continue;
    std::string path = root + "/" + d;
    struct timeval old[2] = {{::time(nullptr) - 60, 0}, {::time(nullptr) - 60, 0}};
    ::utimes(path.c_str(), old);
  }
}

std::set<std::string> listed_sandbox_ids() {
  auto o = run_moat({"ls", "--format", "json"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  std::set<std::string> ids;
  auto j = Json::parse(o.out, nullptr, false);
  if (j.is_array())
    for (const auto& s : j) ids.insert(s.at("id").get<std::string>());
  return ids;
}

// Each cycle writes a state, snapshots it (odd cycles while running, even
// ones stopped), changes the source after, then boots the snapshot and goes
// on from there: the fifth sandbox must hold all five cycles' files and none
// of the changes made after any snapshot, and every source keeps its own
// later changes.
TEST(VmSnapshot, AChainOfFiveCyclesLosesNothing) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "chain0"});
  ok({"start", "chain0"});
  std::string current = "chain0";
  for (int i = 1; i <= 5; ++i) {
    std::string n = std::to_string(i);
    in_guest(current, "echo " + n + " > /root/state && echo file" + n + " > /root/f" + n +
                    " && mkdir -p /root/d" + n + " && rm -f /root/after");
    bool running = i % 2 == 1;
    if (!running) ok({"stop", current});
    ok({"snapshot", "create", current, "snap" + n});
    if (!running) ok({"start", current});
    in_guest(current, "echo after" + n + " > /root/state && touch /root/after && rm /root/f" + n);
    std::string next = "chain" + n;
    ok({"create", "--from-snapshot", "snap" + n, "--name", next});
    ok({"start", next});
    EXPECT_EQ(in_guest(next, "cat /root/state"), n + "\n") << "cycle " << i;
    std::string want;
    for (int k = 1; k <= i; ++k) want += "d" + std::to_string(k) + "\n";
    for (int k = 1; k <= i; ++k) want += "f" + std::to_string(k) + "\n";
    want += "state\n";
    EXPECT_EQ(in_guest(next, "ls /root"), want) << "cycle " << i;
    EXPECT_EQ(in_guest(next, "cat /root/f" + n), "file" + n + "\n");
    // The source keeps what it did after the snapshot.
    EXPECT_EQ(in_guest(current, "cat /root/state; ls /root/after"), "after" + n + "\n/root/after\n");
    auto snap = run_moat({"snapshot", "inspect", "snap" + n});
    ASSERT_EQ(snap.exit_code, 0) << snap.err;
    EXPECT_EQ(inspected_field(next, "snapshot"), Json::parse(snap.out)[0].at("id").get<std::string>());
    ok({"rm", "-f", current});
    current = next;
  }
  ok({"rm", "-f", current});
  for (int i = 1; i <= 5; ++i) ok({"snapshot", "rm", "snap" + std::to_string(i)});
  EXPECT_TRUE(dir_entries(snapshots_root()).empty());
}

// A guest writing files as fast as it can while the snapshot is taken: the
// copy is a clean filesystem (e2fsck finds nothing, the journal needs no
// recovery), and every file that has its final name is complete.
TEST(VmSnapshot, ASnapshotOfABusyDiskIsConsistent) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "busy"});
  ok({"start", "busy"});
  auto writer = spawn_moat({"exec", "busy", "--", "sh", "-c",
                            "i=0; echo started; while [ $i -lt 400 ]; do i=$((i+1)); "
                            "dd if=/dev/urandom of=/root/w.tmp bs=4k count=64 2>/dev/null && mv /root/w.tmp /root/w$i; "
                            "done"});
  ASSERT_NE(read_until(writer.out_fd, "started\n", 60).find("started"), std::string::npos);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ok({"snapshot", "create", "busy", "busy-snap"});
  finish(writer, 300);
  auto list = snapshot_list();
  ASSERT_EQ(list.size(), 1u);
  std::string disk = snapshots_root() + "/" + list[0].at("id").get<std::string>() + "/upper.ext4";
  std::string cmd = "e2fsck -fn " + disk + " >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "e2fsck found problems in the snapshot of a busy disk";
  ok({"run", "--from-snapshot", "busy-snap", "--name", "busy-restored", "-d"});
  std::string sizes = in_guest("busy-restored", "ls /root | grep -c '^w[0-9]'; for f in /root/w[0-9]*; do wc -c < $f; done | sort -u");
  auto lines = std::count(sizes.begin(), sizes.end(), '\n');
  EXPECT_EQ(lines, 2) << sizes;  // the count, then one size
  EXPECT_NE(sizes.find("\n262144\n"), std::string::npos) << sizes;
  EXPECT_NE(sizes.substr(0, 2), "0\n") << "no file was written before the snapshot";
  ok({"rm", "-f", "busy", "busy-restored"});
  ok({"snapshot", "rm", "busy-snap"});
}

// kill -9 at many points of a create: afterwards every snapshot listed is
// whole (a sandbox can be made from it), nothing half-made is listed, and
// no directory is left that no snapshot owns.
TEST(VmSnapshot, KillingACreateLeavesTheOldStateOrTheNew) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "victim"});
  ok({"start", "victim"});
  in_guest("victim", "dd if=/dev/urandom of=/root/big bs=1M count=48 2>/dev/null");
  ok({"stop", "victim"});
  for (int delay_ms : {0, 10, 25, 50, 100, 200, 400}) {
    auto r = spawn_moat({"snapshot", "create", "victim", "k" + std::to_string(delay_ms)});
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(r.pid, SIGKILL);
    finish(r, 60);
  }
  // A directory with no record is removed once it is a few seconds old; age
  // any such one instead of waiting.
  age_unowned_dirs(snapshots_root(), listed_ids());
  auto ids = listed_ids();
  auto dirs = dir_entries(snapshots_root());
  EXPECT_EQ(std::set<std::string>(dirs.begin(), dirs.end()), ids);
  for (const auto& s : snapshot_list()) {
    std::string name = s.at("name");
    auto c = run_moat({"create", "--from-snapshot", name, "--name", "from-" + name});
    EXPECT_EQ(c.exit_code, 0) << name << ": " << c.err;
    ok({"rm", "from-" + name});
    ok({"snapshot", "rm", name});
  }
  ok({"rm", "victim"});
}

// A truncated or altered disk file is refused, with the reason, and leaves
// no sandbox behind.
TEST(VmSnapshot, ADamagedSnapshotIsRefused) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "dmg"});
  ok({"start", "dmg"});
  in_guest("dmg", "echo precious > /root/p");
  ok({"snapshot", "create", "dmg", "dmg-snap"});
  ok({"rm", "-f", "dmg"});
  auto list = snapshot_list();
  ASSERT_EQ(list.size(), 1u);
  std::string disk = snapshots_root() + "/" + list[0].at("id").get<std::string>() + "/upper.ext4";
  long long size = file_size(disk);
  ASSERT_GT(size, 0);

  ASSERT_EQ(::truncate(disk.c_str(), size - 4096), 0);
  auto t = run_moat({"create", "--from-snapshot", "dmg-snap", "--name", "dmg-1"});
  EXPECT_EQ(t.exit_code, 125);
  EXPECT_NE(t.err.find("snapshot dmg-snap is damaged"), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("truncated"), std::string::npos) << t.err;
  ASSERT_EQ(::truncate(disk.c_str(), size), 0);

  // One byte changed in the first data block past the superblock's.
  int fd = ::open(disk.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  off_t data = ::lseek(fd, 1 << 20, SEEK_DATA);
  ASSERT_GE(data, 0);
  unsigned char b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, data + 17), 1);
  b ^= 0x5a;
  ASSERT_EQ(::pwrite(fd, &b, 1, data + 17), 1);
  ::close(fd);
  auto c = run_moat({"create", "--from-snapshot", "dmg-snap", "--name", "dmg-2"});
  EXPECT_EQ(c.exit_code, 125);
  EXPECT_NE(c.err.find("snapshot dmg-snap is damaged: its disk's contents"), std::string::npos) << c.err;
  EXPECT_EQ(inspected_field("dmg-1", "id"), "");
  EXPECT_EQ(inspected_field("dmg-2", "id"), "");
  ok({"snapshot", "rm", "dmg-snap"});
}

// Ten forks of a running sandbox: each starts with the parent's files, and
// what each writes stays its own.
TEST(VmSnapshot, TenForksEachHaveTheParentsStateAndTheirOwnWrites) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "parent", "--memory", "128"});
  ok({"start", "parent"});
  in_guest("parent", "echo parent > /root/who && mkdir /root/tree && echo leaf > /root/tree/leaf");
  auto f = run_moat({"fork", "parent", "-n", "10", "--name-prefix", "kid"});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  std::string want;
  for (int i = 1; i <= 10; ++i) want += "kid-" + std::to_string(i) + "\n";
  EXPECT_EQ(f.out, want);
  for (int i = 1; i <= 10; ++i) {
    std::string kid = "kid-" + std::to_string(i);
    EXPECT_EQ(inspected_field(kid, "state"), "running");
    EXPECT_EQ(in_guest(kid, "cat /root/who /root/tree/leaf; echo " + kid + " > /root/who"), "parent\nleaf\n");
  }
  for (int i = 1; i <= 10; ++i) {
    std::string kid = "kid-" + std::to_string(i);
    EXPECT_EQ(in_guest(kid, "cat /root/who"), kid + "\n");
  }
  EXPECT_EQ(in_guest("parent", "cat /root/who"), "parent\n");
  // Forks are not made from a recorded snapshot, and leave none behind.
  EXPECT_TRUE(snapshot_list().empty());
  EXPECT_EQ(inspected_field("kid-1", "snapshot"), "");
  std::vector<std::string> rm = {"rm", "-f", "parent"};
  for (int i = 1; i <= 10; ++i) rm.push_back("kid-" + std::to_string(i));
  ok(rm);
  // A taken name fails the fork and leaves no child.
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "p2"});
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "p2-fork-2"});
  auto clash = run_moat({"fork", "p2", "-n", "3", "--no-start"});
  EXPECT_EQ(clash.exit_code, 125);
  EXPECT_NE(clash.err.find("fork 2 of 3"), std::string::npos) << clash.err;
  EXPECT_EQ(inspected_field("p2-fork-1", "id"), "");
  EXPECT_EQ(inspected_field("p2-fork-3", "id"), "");
  ok({"rm", "p2", "p2-fork-2"});
}

// kill -9 of a fork while its children are being made (some exist, others
// not yet), and at other moments: afterwards there are all of them or none,
// and no directory is left that no sandbox owns.
TEST(VmSnapshot, KillingAForkLeavesAllItsChildrenOrNone) {
  constexpr int kChildren = 6;
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "src"});
  ok({"start", "src"});
  in_guest("src", "dd if=/dev/urandom of=/root/big bs=1M count=32 2>/dev/null");
  ok({"stop", "src"});
  int mid_way = 0;
  for (int round = 0; round < 5; ++round) {
    std::string prefix = "k" + std::to_string(round);
    std::size_t before = dir_entries(sandboxes_root()).size();
    auto r = spawn_moat({"fork", "src", "-n", std::to_string(kChildren), "--no-start", "--name-prefix", prefix});
    if (round < 3) {
      // Until the second child's directory exists: inside the children's loop.
      for (int i = 0; i < 20000 && dir_entries(sandboxes_root()).size() < before + 2; ++i)
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      if (dir_entries(sandboxes_root()).size() >= before + 2) ++mid_way;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(round == 3 ? 0 : 150));
    }
    ::kill(r.pid, SIGKILL);
    finish(r, 60);
    age_unowned_dirs(sandboxes_root(), listed_sandbox_ids());
    int made = 0;
    for (int i = 1; i <= kChildren; ++i) {
      std::string kid = prefix + "-" + std::to_string(i);
      std::string state = inspected_field(kid, "state");
      if (state.empty()) continue;
      ++made;
      EXPECT_EQ(state, "created") << kid;
    }
    EXPECT_TRUE(made == 0 || made == kChildren) << "round " << round << ": " << made << " of " << kChildren;
    auto ids = listed_sandbox_ids();
    auto dirs = dir_entries(sandboxes_root());
    EXPECT_EQ(std::set<std::string>(dirs.begin(), dirs.end()), ids) << "round " << round;
    if (made == kChildren) {
      // Whole: each boots with the source's files.
      std::string kid = prefix + "-" + std::to_string(kChildren);
      ok({"start", kid});
      EXPECT_EQ(in_guest(kid, "wc -c < /root/big"), "33554432\n");
    }
    std::vector<std::string> rm = {"rm", "-f"};
    for (int i = 1; i <= kChildren; ++i)
      if (!inspected_field(prefix + "-" + std::to_string(i), "id").empty()) rm.push_back(prefix + "-" + std::to_string(i));
    if (rm.size() > 2) ok(rm);
  }
  EXPECT_EQ(mid_way, 3) << "the kill did not land while the children were being made";
  // The next fork of the source clears the dead ones' copy and works.
  auto f = run_moat({"fork", "src", "-n", "2", "--no-start", "--name-prefix", "after"});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  ok({"rm", "src", "after-1", "after-2"});
}

TEST(VmSnapshot, RulesAndErrors) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "r1"});
  ok({"snapshot", "create", "r1", "r-snap"});  // never started: the empty upper
  auto dup = run_moat({"snapshot", "create", "r1", "r-snap"});
  EXPECT_EQ(dup.exit_code, 125);
  EXPECT_NE(dup.err.find("a snapshot named \"r-snap\" already exists"), std::string::npos) << dup.err;
  auto bad = run_moat({"snapshot", "create", "r1", "-bad/name"});
  EXPECT_EQ(bad.exit_code, 125);
  auto none = run_moat({"snapshot", "create", "nosuch", "x"});
  EXPECT_EQ(none.exit_code, 125);
  EXPECT_NE(none.err.find("no such sandbox: nosuch"), std::string::npos) << none.err;
  auto both = run_moat({"create", "--from-snapshot", "r-snap", "--rootfs-dir", busybox_rootfs()});
  EXPECT_EQ(both.exit_code, 125);
  EXPECT_NE(both.err.find("has the snapshot's root"), std::string::npos) << both.err;
  auto missing = run_moat({"create", "--from-snapshot", "nosuch"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("no such snapshot: nosuch"), std::string::npos) << missing.err;
  // In use: refused while a sandbox made from it exists.
  ok({"create", "--from-snapshot", "r-snap", "--name", "r2"});
  auto busy = run_moat({"snapshot", "rm", "r-snap"});
  EXPECT_EQ(busy.exit_code, 125);
  EXPECT_NE(busy.err.find("snapshot r-snap is in use by sandbox r2; remove them first"), std::string::npos)
      << busy.err;
  auto inspect = run_moat({"snapshot", "inspect", "r-snap"});
  ASSERT_EQ(inspect.exit_code, 0);
  auto j = Json::parse(inspect.out);
  EXPECT_EQ(j[0]["used_by"], Json::array({"r2"}));
  EXPECT_EQ(j[0]["source_name"], "r1");
  EXPECT_EQ(j[0]["disk_size_mib"], 4096);
  ok({"rm", "r2"});
  ok({"snapshot", "rm", "r-snap"});
  ok({"rm", "r1"});
  auto gone = run_moat({"snapshot", "inspect", "r-snap"});
  EXPECT_EQ(gone.exit_code, 125);
}

// The guest's freeze, spoken to directly: a holder that goes away thaws the
// disk at once; one that outstays its time limit finds the freeze lifted and
// is told so (`held` false), and the guest's writes went on meanwhile.
TEST(VmSnapshot, TheFreezeEndsWithItsHolderOrItsTimeLimit) {
  ok({"create", "--rootfs-dir", busybox_rootfs(), "--name", "frz"});
  ok({"start", "frz"});
  std::string sock = test_home() + "/sandboxes/" + sandbox_id("frz") + "/control.sock";
  {
    auto conn = sandbox::AgentConnection::connect(sock);
    ASSERT_TRUE(conn) << conn.error().message;
    std::uint32_t stream = conn->next_stream();
    ASSERT_TRUE(conn->send(proto::make_message(stream, proto::msg::kFreeze, {{"timeout_ms", 600000}})));
    auto frozen = conn->receive(60000);
    ASSERT_TRUE(frozen && *frozen);
    EXPECT_EQ((*frozen)->type, "frozen");
    // A second freeze meanwhile is refused.
    auto other = sandbox::AgentConnection::connect(sock);
    ASSERT_TRUE(other);
    std::uint32_t s2 = other->next_stream();
    ASSERT_TRUE(other->send(proto::make_message(s2, proto::msg::kFreeze, {{"timeout_ms", 1000}})));
    auto refused = other->receive(60000);
    ASSERT_TRUE(refused && *refused);
    EXPECT_EQ((*refused)->type, "error");
    EXPECT_EQ(proto::parse_error((*refused)->payload).code, "busy");
  }  // the holder leaves without a word
  EXPECT_EQ(in_guest("frz", "echo written > /root/after-holder && cat /root/after-holder"), "written\n");

  auto conn = sandbox::AgentConnection::connect(sock);
  ASSERT_TRUE(conn);
  std::uint32_t stream = conn->next_stream();
  ASSERT_TRUE(conn->send(proto::make_message(stream, proto::msg::kFreeze, {{"timeout_ms", 1500}})));
  auto frozen = conn->receive(60000);
  ASSERT_TRUE(frozen && *frozen);
  ASSERT_EQ((*frozen)->type, "frozen");
  // Blocks until the limit thaws the disk, then completes.
  EXPECT_EQ(in_guest("frz", "echo late > /root/late && cat /root/late"), "late\n");
  ASSERT_TRUE(conn->send(proto::make_message(stream, proto::msg::kThaw)));
  auto thawed = conn->receive(60000);
  ASSERT_TRUE(thawed && *thawed);
  EXPECT_EQ((*thawed)->type, "thawed");
  EXPECT_EQ((*thawed)->payload.value("held", true), false);
  ok({"rm", "-f", "frz"});
}

}  // namespace
}  // namespace moat::test
