// Memory snapshots (docs/snapshots.md, "Memory snapshots"): a running
// sandbox's whole VM saved with its disk; sandboxes made from it go on from
// that moment, each with its own hostname, entropy and the host's clock,
// while the source runs on.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

long long number_in(const std::string& name, const std::string& path) {
  auto o = run_moat({"exec", name, "--", "cat", path});
  EXPECT_EQ(o.exit_code, 0) << name << ": " << o.err;
  return o.exit_code == 0 ? std::atoll(o.out.c_str()) : -1;
}

nlohmann::json inspected(const std::vector<std::string>& what) {
  auto o = run_moat(what);
  auto j = nlohmann::json::parse(o.out, nullptr, false);
  EXPECT_TRUE(j.is_array() && j.size() == 1) << o.out << o.err;
  return j.is_array() && j.size() == 1 ? j[0] : nlohmann::json::object();
}

// The resident and shared kilobytes of QEMU's mapping of a memory
// snapshot's RAM file. Found by the file's device and inode, which smaps
// names beside the path: the path is the one QEMU's jail sees, printed
// relative to whatever root the jail's mount namespace has (just /ram on a
// machine, the whole chroot path where the tests run in a chroot).
struct RamMapping {
  long long rss_kb = 0;
  long long shared_kb = 0;
  bool found = false;
};

RamMapping ram_mapping_of(pid_t qemu, const std::string& ram_file) {
  RamMapping m;
  struct stat st {};
  EXPECT_EQ(::stat(ram_file.c_str(), &st), 0) << ram_file;
  std::ifstream smaps("/proc/" + std::to_string(qemu) + "/smaps");
  bool in_ram = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long long start = 0, end = 0, offset = 0, inode = 0;
    unsigned major = 0, minor = 0;
    char perms[8] = {};
    bool header = std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &offset, &major,
                              &minor, &inode) == 7;
    if (header) {
      in_ram = inode == st.st_ino && makedev(major, minor) == st.st_dev;
      m.found = m.found || in_ram;
      continue;
    }
    if (!in_ram) continue;
    long long kb = 0;
    if (std::sscanf(line.c_str(), "Rss: %lld kB", &kb) == 1) m.rss_kb += kb;
    if (std::sscanf(line.c_str(), "Shared_Clean: %lld kB", &kb) == 1) m.shared_kb += kb;
    if (std::sscanf(line.c_str(), "Shared_Dirty: %lld kB", &kb) == 1) m.shared_kb += kb;
  }
  return m;
}

// A busybox sandbox `name` with state only in the guest's memory: a file in
// RAM (/dev/shm/v: in-ram) and a process counting in /tmp/n.
void run_with_state_in_memory(const std::string& name) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", name, "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  ASSERT_EQ(run_moat({"exec", name, "--", "sh", "-c",
                      "echo in-ram > /dev/shm/v; "
                      "(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.25; done) >/dev/null 2>&1 &"})
                .exit_code,
            0);
}

TEST(VmMemorySnapshot, ChildrenGoOnFromTheMomentEachWithItsOwnIdentity) {
  ASSERT_NO_FATAL_FAILURE(run_with_state_in_memory("ms"));
  for (int i = 0; i < 100 && number_in("ms", "/tmp/n") < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto made = run_moat({"snapshot", "create", "--memory", "ms", "ms-snap"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  long long at_snapshot = number_in("ms", "/tmp/n");
  auto snap = inspected({"snapshot", "inspect", "ms-snap"});
  EXPECT_EQ(snap["memory"], true);
  EXPECT_EQ(snap["memory_mib"], 256);
  EXPECT_EQ(snap["cpus"], 1);
  // The source runs on.
  EXPECT_EQ(inspected({"inspect", "ms"})["state"], "running");
  long long later = number_in("ms", "/tmp/n");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_GT(number_in("ms", "/tmp/n"), later) << "the source's counter stopped";

  // Ten children in parallel.
  std::vector<std::string> children;
  for (int i = 1; i <= 10; ++i) children.push_back("ms-" + std::to_string(i));
  std::vector<std::future<Outcome>> starts;
  for (const auto& c : children)
    starts.push_back(std::async(std::launch::async, [c] {
      return run_moat({"run", "-d", "--name", c, "--from-snapshot", "ms-snap"});
    }));
  for (auto& s : starts) {
    auto r = s.get();
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Identity first, right after the restores: the guest's clock must read
  // between the host's just before and just after the command (±1 s).
  std::vector<std::pair<Outcome, std::pair<long long, long long>>> ids;
  for (const auto& c : children) {
    long long before = static_cast<long long>(::time(nullptr));
    auto o = run_moat({"exec", c, "--", "sh", "-c",
                       "cat /proc/sys/kernel/random/uuid; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; "
                       "echo; hostname; date +%s"});
    ids.push_back({o, {before, static_cast<long long>(::time(nullptr))}});
  }
  std::set<std::string> uuids, randoms, hostnames;
  for (std::size_t i = 0; i < children.size(); ++i) {
    const std::string& c = children[i];
    auto [id, host_times] = ids[i];
    auto [before, after] = host_times;
    ASSERT_EQ(id.exit_code, 0) << id.err;
    std::vector<std::string> lines;
    for (std::size_t at = 0, nl; (nl = id.out.find('\n', at)) != std::string::npos; at = nl + 1)
      lines.push_back(id.out.substr(at, nl - at));
    ASSERT_EQ(lines.size(), 4u) << id.out;
    uuids.insert(lines[0]);
    randoms.insert(lines[1]);
    hostnames.insert(lines[2]);
    EXPECT_EQ(lines[2], "moat-" + inspected({"inspect", c})["id"].get<std::string>()) << "its own hostname";
    long long guest = std::atoll(lines[3].c_str());
    EXPECT_TRUE(guest >= before - 1 && guest <= after + 1)
        << c << "'s clock reads " << guest << ", the host's " << before << " to " << after << "; "
        << run_moat({"exec", c, "--", "sh", "-c",
                     "cat /sys/devices/system/clocksource/clocksource0/current_clocksource; dmesg | grep -i clocksource"})
               .out;
  }
  for (const auto& c : children) {
    auto info = inspected({"inspect", c});
    EXPECT_EQ(info["state"], "running");
    EXPECT_EQ(info["snapshot"], snap["id"]);
    std::string dir = info["dir"];
    EXPECT_NE(access((dir + "/memory.state").c_str(), F_OK), 0) << "the child's link goes once it runs";
    EXPECT_NE(access((dir + "/shared.ram").c_str(), F_OK), 0) << "the child's link goes once it runs";
    // The name programs read from files is the child's too, not the source's.
    std::string own = "moat-" + info["id"].get<std::string>();
    auto files = run_moat({"exec", c, "--", "sh", "-c", "cat /etc/hostname; grep 127.0.1.1 /etc/hosts"});
    EXPECT_EQ(files.out, own + "\n127.0.1.1\t" + own + "\n") << c;
    auto ram = run_moat({"exec", c, "--", "cat", "/dev/shm/v"});
    EXPECT_EQ(ram.out, "in-ram\n") << c << ": " << ram.err;
    // Its counter goes on from the snapshot's value, not from a fresh boot.
    long long n = number_in(c, "/tmp/n");
    EXPECT_GE(n, at_snapshot - 15) << c;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    EXPECT_GT(number_in(c, "/tmp/n"), n) << c << "'s counter does not count";
  }
  // Warm fork: every child maps the snapshot's RAM private, and the pages
  // none has written are the page cache's, one copy for all.
  const std::string ram_file = test_home() + "/snapshots/" + snap["id"].get<std::string>() + "/memory.ram";
  long long rss_kb = 0, shared_kb = 0;
  for (const auto& c : children) {
    pid_t qemu = qemu_of(inspected({"inspect", c})["dir"].get<std::string>());
    ASSERT_GT(qemu, 0) << c;
    RamMapping m = ram_mapping_of(qemu, ram_file);
    EXPECT_TRUE(m.found) << c << "'s QEMU does not map the snapshot's RAM file";
    rss_kb += m.rss_kb;
    shared_kb += m.shared_kb;
  }
  EXPECT_GT(rss_kb, 10 * 1024) << "the children's RAM is not the snapshot's file";
  EXPECT_GE(shared_kb * 2, rss_kb) << "of " << rss_kb << " KiB of the RAM file resident in the children, only "
                                   << shared_kb << " KiB are shared";
  EXPECT_EQ(uuids.size(), children.size()) << "children share random state";
  EXPECT_EQ(randoms.size(), children.size()) << "children share random state";
  EXPECT_EQ(hostnames.size(), children.size());

  // A child stopped and started again boots afresh.
  ASSERT_EQ(run_moat({"stop", "ms-1"}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "ms-1"}).exit_code, 0);
  auto fresh = run_moat({"exec", "ms-1", "--", "sh", "-c", "test -e /dev/shm/v && echo kept || echo gone"});
  EXPECT_EQ(fresh.out, "gone\n");

  // In use, the snapshot stays; the children removed, it goes.
  EXPECT_NE(run_moat({"snapshot", "rm", "ms-snap"}).exit_code, 0);
  for (const auto& c : children) EXPECT_EQ(run_moat({"rm", "-f", c}).exit_code, 0);
  EXPECT_EQ(run_moat({"snapshot", "rm", "ms-snap"}).exit_code, 0);
  EXPECT_EQ(run_moat({"rm", "-f", "ms"}).exit_code, 0);
}

// fork --memory: the same restore, with no snapshot left behind.
TEST(VmMemorySnapshot, AWarmForkGoesOnFromTheMomentAndLeavesNoSnapshot) {
  ASSERT_NO_FATAL_FAILURE(run_with_state_in_memory("wf"));
  auto forked = run_moat({"fork", "--memory", "wf", "-n", "3", "--name-prefix", "wk"});
  ASSERT_EQ(forked.exit_code, 0) << forked.err;
  EXPECT_EQ(forked.out, "wk-1\nwk-2\nwk-3\n");
  std::string source_dir = inspected({"inspect", "wf"})["dir"];
  for (const char* scratch : {"/fork-copy.ext4", "/fork-memory.state", "/fork-memory.ram"})
    EXPECT_FALSE(std::filesystem::exists(source_dir + scratch)) << scratch << " is left in the source";
  EXPECT_EQ(run_moat({"snapshot", "ls", "-q"}).out, "");
  EXPECT_EQ(inspected({"inspect", "wf"})["state"], "running");
  for (const char* c : {"wk-1", "wk-2", "wk-3"}) {
    EXPECT_EQ(inspected({"inspect", c})["state"], "running") << c;
    EXPECT_EQ(run_moat({"exec", c, "--", "cat", "/dev/shm/v"}).out, "in-ram\n") << c;
    long long n = number_in(c, "/tmp/n");
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    EXPECT_GT(number_in(c, "/tmp/n"), n) << c << "'s counter does not count";
  }
  // A child's own memory snapshot: its RAM is the fork's file mapped
  // private, which its shim cannot copy, so the RAM travels in the stream
  // (no memory.ram), and a grandchild has it all the same.
  ASSERT_EQ(run_moat({"snapshot", "create", "--memory", "wk-1", "wk-snap"}).exit_code, 0);
  std::string snap_dir = test_home() + "/snapshots/" + inspected({"snapshot", "inspect", "wk-snap"})["id"].get<std::string>();
  EXPECT_TRUE(std::filesystem::exists(snap_dir + "/memory.state"));
  EXPECT_FALSE(std::filesystem::exists(snap_dir + "/memory.ram"));
  EXPECT_GT(std::filesystem::file_size(snap_dir + "/memory.state"), 1u << 20) << "the RAM is not in the stream";
  ASSERT_EQ(run_moat({"run", "-d", "--name", "wk-grand", "--from-snapshot", "wk-snap"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "wk-grand", "--", "cat", "/dev/shm/v"}).out, "in-ram\n");
  EXPECT_EQ(run_moat({"rm", "-f", "wk-grand"}).exit_code, 0);
  EXPECT_EQ(run_moat({"snapshot", "rm", "wk-snap"}).exit_code, 0);
  // Not running: nothing to save, and no child is made.
  ASSERT_EQ(run_moat({"stop", "wf"}).exit_code, 0);
  auto stopped = run_moat({"fork", "--memory", "wf", "--name-prefix", "wk2"});
  EXPECT_NE(stopped.exit_code, 0);
  EXPECT_NE(stopped.err.find("a warm fork needs a running sandbox"), std::string::npos) << stopped.err;
  EXPECT_NE(run_moat({"inspect", "wk2-1"}).exit_code, 0);
  for (const char* s : {"wf", "wk-1", "wk-2", "wk-3"}) EXPECT_EQ(run_moat({"rm", "-f", s}).exit_code, 0);
}

TEST(VmMemorySnapshot, WhatCannotBeRestoredIsRefusedClearly) {
  // A stopped sandbox has no memory to save.
  ASSERT_EQ(run_moat({"create", "--name", "msr", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  auto stopped = run_moat({"snapshot", "create", "--memory", "msr", "msr-snap"});
  EXPECT_NE(stopped.exit_code, 0);
  EXPECT_NE(stopped.err.find("needs a running sandbox"), std::string::npos) << stopped.err;
  EXPECT_NE(run_moat({"snapshot", "inspect", "msr-snap"}).exit_code, 0) << "nothing is left of a failed create";
  // A child whose VM could not take the state: no network device where the
  // snapshot's VM has one.
  ASSERT_EQ(run_moat({"start", "msr"}).exit_code, 0);
  ASSERT_EQ(run_moat({"snapshot", "create", "--memory", "msr", "msr-snap"}).exit_code, 0);
  auto no_net = run_moat({"create", "--name", "msr-1", "--net", "none", "--from-snapshot", "msr-snap"});
  EXPECT_NE(no_net.exit_code, 0);
  EXPECT_NE(no_net.err.find("needs a network"), std::string::npos) << no_net.err;
  EXPECT_NE(run_moat({"inspect", "msr-1"}).exit_code, 0);
  // A damaged state: the child's start says why, and a stop lets it boot afresh.
  auto snap = inspected({"snapshot", "inspect", "msr-snap"});
  ASSERT_EQ(run_moat({"create", "--name", "msr-2", "--from-snapshot", "msr-snap"}).exit_code, 0);
  std::string dir = inspected({"inspect", "msr-2"})["dir"];
  std::string state = dir + "/memory.state";
  // The child's own link: replace it with a cut copy (half of it), leaving
  // the snapshot's whole.
  auto cut_in_half = [](const std::string& file) {
    return std::system(("head -c $(( $(stat -c %s '" + file + "') / 2 )) '" + file + "' > '" + file +
                        ".cut' && mv -f '" + file + ".cut' '" + file + "'")
                           .c_str());
  };
  ASSERT_EQ(cut_in_half(state), 0);
  auto refused = run_moat({"start", "msr-2"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("restoring the state"), std::string::npos) << refused.err;
  ASSERT_EQ(run_moat({"stop", "msr-2"}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/shared.ram")) << "a stop discards the RAM file's link too";
  ASSERT_EQ(run_moat({"start", "msr-2"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "msr-2", "--", "true"}).exit_code, 0);
  EXPECT_EQ(run_moat({"rm", "-f", "msr-2"}).exit_code, 0);
  // A cut RAM file: QEMU refuses to map it, and says so.
  ASSERT_EQ(run_moat({"create", "--name", "msr-2", "--from-snapshot", "msr-snap"}).exit_code, 0);
  dir = inspected({"inspect", "msr-2"})["dir"];
  ASSERT_EQ(cut_in_half(dir + "/shared.ram"), 0);
  refused = run_moat({"start", "msr-2"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("restoring the state"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("backing store"), std::string::npos) << "QEMU's own words: " << refused.err;
  ASSERT_EQ(run_moat({"stop", "msr-2"}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "msr-2"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "msr-2", "--", "true"}).exit_code, 0);
  for (const char* s : {"msr", "msr-2"}) EXPECT_EQ(run_moat({"rm", "-f", s}).exit_code, 0);
  EXPECT_EQ(run_moat({"snapshot", "rm", "msr-snap"}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
