// Memory snapshots (docs/snapshots.md, "Memory snapshots"): a running
// sandbox's whole VM saved with its disk; sandboxes made from it go on from
// that moment, each with its own hostname, entropy and the host's clock,
// while the source runs on.
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
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

TEST(VmMemorySnapshot, ChildrenGoOnFromTheMomentEachWithItsOwnIdentity) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", "ms", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  // State only in the guest's memory: a file in RAM and a counting process.
  ASSERT_EQ(run_moat({"exec", "ms", "--", "sh", "-c",
                      "echo in-ram > /dev/shm/v; "
                      "(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done) >/dev/null 2>&1 &"})
                .exit_code,
            0);
  for (int i = 0; i < 100 && number_in("ms", "/tmp/n") < 5; ++i)
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

  // Three children in parallel.
  const std::vector<std::string> children = {"ms-1", "ms-2", "ms-3"};
  std::vector<std::future<Outcome>> starts;
  for (const auto& c : children)
    starts.push_back(std::async(std::launch::async, [c] {
      return run_moat({"run", "-d", "--name", c, "--from-snapshot", "ms-snap"});
    }));
  for (auto& s : starts) {
    auto r = s.get();
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::set<std::string> uuids, randoms, hostnames;
  for (const auto& c : children) {
    auto info = inspected({"inspect", c});
    EXPECT_EQ(info["state"], "running");
    EXPECT_EQ(info["snapshot"], snap["id"]);
    std::string dir = info["dir"];
    EXPECT_NE(access((dir + "/memory.state").c_str(), F_OK), 0) << "the child's link goes once it runs";
    auto ram = run_moat({"exec", c, "--", "cat", "/dev/shm/v"});
    EXPECT_EQ(ram.out, "in-ram\n") << c << ": " << ram.err;
    // Its counter goes on from the snapshot's value, not from a fresh boot.
    long long n = number_in(c, "/tmp/n");
    EXPECT_GE(n, at_snapshot - 15) << c;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_GT(number_in(c, "/tmp/n"), n) << c << "'s counter does not count";
    auto id = run_moat({"exec", c, "--", "sh", "-c",
                        "cat /proc/sys/kernel/random/uuid; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; "
                        "echo; hostname; date +%s"});
    ASSERT_EQ(id.exit_code, 0) << id.err;
    std::vector<std::string> lines;
    for (std::size_t at = 0, nl; (nl = id.out.find('\n', at)) != std::string::npos; at = nl + 1)
      lines.push_back(id.out.substr(at, nl - at));
    ASSERT_EQ(lines.size(), 4u) << id.out;
    uuids.insert(lines[0]);
    randoms.insert(lines[1]);
    hostnames.insert(lines[2]);
    EXPECT_EQ(lines[2], "moat-" + info["id"].get<std::string>()) << "its own hostname";
    EXPECT_LE(std::llabs(std::atoll(lines[3].c_str()) - static_cast<long long>(::time(nullptr))), 1)
        << c << "'s clock";
  }
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
  // The child's own link: replace it with a cut copy, leaving the snapshot's whole.
  ASSERT_EQ(std::system(("head -c 1000000 '" + state + "' > '" + state + ".cut' && mv -f '" + state + ".cut' '" +
                         state + "'")
                            .c_str()),
            0);
  auto refused = run_moat({"start", "msr-2"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("restoring the state"), std::string::npos) << refused.err;
  ASSERT_EQ(run_moat({"stop", "msr-2"}).exit_code, 0);
  ASSERT_EQ(run_moat({"start", "msr-2"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "msr-2", "--", "true"}).exit_code, 0);
  for (const char* s : {"msr", "msr-2"}) EXPECT_EQ(run_moat({"rm", "-f", s}).exit_code, 0);
  EXPECT_EQ(run_moat({"snapshot", "rm", "msr-snap"}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
