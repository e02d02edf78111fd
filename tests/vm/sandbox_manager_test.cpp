// The sandbox manager through the CLI: persistent state across stop/start,
// isolation between sandboxes, names and labels, parallel creates,
// reconciliation after kill -9, limits enforced by the shim, logs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <atomic>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "moat/events.h"
#include "moat/runtime.h"
#include "sandbox/sandbox_db.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

using Json = nlohmann::json;

std::string sandbox_dir(const std::string& id) { return test_home() + "/sandboxes/" + id; }

std::string trimmed(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

Json inspect(const std::string& id) {
  auto o = run_moat({"inspect", id});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto j = Json::parse(o.out, nullptr, false);
  if (!j.is_array() || j.size() != 1) {
    ADD_FAILURE() << "inspect " << id << ": " << o.out << o.err;
    return Json::object();
  }
  return j[0];
}

// Polls inspect until the state is `want` or the timeout passes.
Json wait_for_state(const std::string& id, const std::string& want, int timeout_s) {
  Json j;
  for (int i = 0; i < timeout_s * 10; ++i) {
    j = inspect(id);
    if (j.value("state", "") == want) return j;
    ::usleep(100000);
  }
  return j;
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return sha256_hex(ss.str());
}

std::string run_detached(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"run", "-d", "--rootfs-dir", busybox_rootfs()};
  args.insert(args.end(), extra.begin(), extra.end());
  auto o = run_moat(args);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  return trimmed(o.out);
}

TEST(VmSandboxManager, FilesSurviveStopStartAndSandboxesAreIsolated) {
  std::string a = create_sandbox({"--name", "iso-a"});
  std::string b = create_sandbox({"--name", "iso-b"});
  // The shared lower: the cached EROFS both boot from, attached read-only.
  std::string lower;
  {
    std::ifstream cmd(sandbox_dir(a) + "/qemu.cmdline");
    std::string line;
    while (std::getline(cmd, line))
      if (line.find(",id=disk0,") != std::string::npos) lower = line;
  }
  ASSERT_NE(lower.find("readonly=on"), std::string::npos) << lower;
  auto config = Json::parse(std::ifstream(sandbox_dir(a) + "/config.json"), nullptr, false);
  ASSERT_TRUE(config.is_object());
  std::string lower_path = config["vm"]["disks"][0].value("path", "");
  ASSERT_TRUE(lower_path.ends_with(".erofs")) << lower_path;
  EXPECT_TRUE(config["vm"]["disks"][0].value("read_only", false));
  std::string lower_before = file_sha256(lower_path);

  auto w = run_moat({"exec", "iso-a", "--", "sh", "-c", "echo kept > /root/state && mkdir -p /srv/d && echo x > /srv/d/f"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto other = run_moat({"exec", "iso-b", "--", "sh", "-c", "cat /root/state; ls /srv/d"});
  EXPECT_NE(other.exit_code, 0);
  EXPECT_EQ(other.out, "");

  ASSERT_EQ(run_moat({"stop", "iso-a"}).exit_code, 0);
  EXPECT_EQ(inspect(a).value("state", ""), "stopped");
  EXPECT_EQ(inspect(a).value("reason", ""), "stop requested by a client");
  ASSERT_EQ(run_moat({"start", "iso-a"}).exit_code, 0);
  auto r = run_moat({"exec", "iso-a", "--", "cat", "/root/state", "/srv/d/f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kept\nx\n");
  auto restarted = run_moat({"restart", "iso-a"});
  EXPECT_EQ(restarted.exit_code, 0) << restarted.err;
  EXPECT_EQ(run_moat({"exec", "iso-a", "--", "cat", "/root/state"}).out, "kept\n");

  EXPECT_EQ(file_sha256(lower_path), lower_before) << "the shared lower changed";
  EXPECT_EQ(run_moat({"rm", "-f", a, b}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// moat.db is the one source of a sandbox's settings: start derives
// config.json from the record, so a stale or missing file changes nothing,
// and a record from before the VM settings were kept adopts them once.
TEST(VmSandboxManager, SettingsComeFromTheRecordNotConfigJson) {
  std::string id = create_sandbox({"--name", "cfg-src", "--hostname", "from-record"});
  std::string config = sandbox_dir(id) + "/config.json";
  ASSERT_EQ(run_moat({"stop", id}).exit_code, 0);
  {
    std::ifstream in(config);
    Json cfg = Json::parse(in, nullptr, false);
    ASSERT_TRUE(cfg.is_object());
    cfg["vm"]["hostname"] = "stale";
    std::ofstream(config, std::ios::trunc) << cfg.dump();
  }
  ASSERT_EQ(run_moat({"start", id}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", id, "--", "hostname"}).out, "from-record\n");

  ASSERT_EQ(run_moat({"stop", id}).exit_code, 0);
  ASSERT_EQ(::unlink(config.c_str()), 0);
  ASSERT_EQ(run_moat({"start", id}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", id, "--", "hostname"}).out, "from-record\n");

  ASSERT_EQ(run_moat({"stop", id}).exit_code, 0);
  {
    auto db = sandbox::SandboxDb::open(test_home());
    ASSERT_TRUE(db.ok()) << db.error().message;
    auto r = (*db)->find(id);
    ASSERT_TRUE(r.ok() && r->has_value());
    EXPECT_TRUE((*r)->vm.stored);
    (*r)->vm = sandbox::VmRecord{};  // as an older moat wrote it
    ASSERT_TRUE((*db)->update_spec(**r).ok());
  }
  ASSERT_EQ(run_moat({"start", id}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", id, "--", "hostname"}).out, "from-record\n");
  {
    auto db = sandbox::SandboxDb::open(test_home());
    ASSERT_TRUE(db.ok());
    auto r = (*db)->find(id);
    ASSERT_TRUE(r.ok() && r->has_value());
    EXPECT_TRUE((*r)->vm.stored);
    EXPECT_EQ((*r)->vm.hostname, "from-record");
  }
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

Json config_network(const std::string& id) {
  std::ifstream in(sandbox_dir(id) + "/config.json");
  Json cfg = Json::parse(in, nullptr, false);
  EXPECT_TRUE(cfg.is_object() && cfg.contains("network")) << id;
  return cfg.is_object() ? cfg.value("network", Json::object()) : Json::object();
}

// The network options reach the shim in config.json at every start. An
// update of a running sandbox waits for its shim's answer and changes the
// record only when the shim took it (a sandbox started without a network
// device refuses one that needs a device); a stopped sandbox's record
// changes at once, and the next start passes it on.
TEST(VmSandboxManager, NetworkOptionsReachTheShimAndUpdatesWaitForIt) {
  std::string id = create_sandbox({"--name", "net-upd", "--net", "none", "--allow", "10.0.0.0/8", "-p", "8080:80"});
  Json rules = Json::array({{{"allow", true}, {"rule", "10.0.0.0/8"}}});
  EXPECT_EQ(config_network(id)["mode"], "none");
  EXPECT_EQ(config_network(id)["rules"], rules);

  auto taken = run_moat({"network", "update", "net-upd", "--deny", "@private"});
  EXPECT_EQ(taken.exit_code, 0) << taken.err;
  EXPECT_EQ(inspect(id)["network"]["rules"], Json::array({{{"allow", false}, {"rule", "@private"}}}));

  std::string bare = create_sandbox({"--name", "net-bare", "--net", "none"});
  auto refused = run_moat({"network", "update", "net-bare", "--allow", "1.1.1.1:443"});
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_EQ(refused.err,
            "moat: sandbox net-bare: the sandbox runs without a network device (it was started with --net none and "
            "no --allow); the new policy applies from its next start\n");
  EXPECT_EQ(inspect(bare)["network"]["rules"], Json::array());
  auto still = run_moat({"exec", "net-bare", "--", "echo", "up"});
  EXPECT_EQ(still.out, "up\n") << still.err;
  EXPECT_EQ(run_moat({"rm", "-f", "net-bare"}).exit_code, 0);

  ASSERT_EQ(run_moat({"stop", "net-upd"}).exit_code, 0);
  auto stored = run_moat({"network", "update", "net-upd", "--net", "public", "--deny", "@private"});
  EXPECT_EQ(stored.exit_code, 0) << stored.err;
  ASSERT_EQ(run_moat({"start", "net-upd"}).exit_code, 0);
  EXPECT_EQ(config_network(id)["mode"], "public");
  EXPECT_EQ(config_network(id)["rules"], Json::array({{{"allow", false}, {"rule", "@private"}}}));
  EXPECT_EQ(config_network(id)["ports"][0]["host_port"], 8080);
  EXPECT_EQ(run_moat({"rm", "-f", "net-upd"}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmSandboxManager, NamesLabelsListAndInspect) {
  std::string id = create_sandbox({"--name", "web-1", "--label", "team=red", "--label", "tier=db"});
  std::string other = create_sandbox({"--label", "team=blue"});

  auto dup = run_moat({"create", "--name", "web-1", "--rootfs-dir", busybox_rootfs()});
  EXPECT_EQ(dup.exit_code, 125);
  EXPECT_NE(dup.err.find("the name \"web-1\" is already in use"), std::string::npos) << dup.err;
  auto bad = run_moat({"create", "--name", "no/slash", "--rootfs-dir", busybox_rootfs()});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("invalid name \"no/slash\""), std::string::npos) << bad.err;

  auto q = run_moat({"ls", "-q"});
  EXPECT_EQ(q.out, "web-1\n" + other + "\n");
  auto red = run_moat({"ls", "-q", "--label", "team=red"});
  EXPECT_EQ(red.out, "web-1\n");
  auto both = run_moat({"ls", "-q", "--label", "team=red", "--label", "tier=db"});
  EXPECT_EQ(both.out, "web-1\n");
  EXPECT_EQ(run_moat({"ls", "-q", "--label", "team=green"}).out, "");

  auto js = Json::parse(run_moat({"ls", "--format", "json"}).out, nullptr, false);
  ASSERT_TRUE(js.is_array());
  ASSERT_EQ(js.size(), 2u);
  EXPECT_EQ(js[0]["id"], id);
  EXPECT_EQ(js[0]["name"], "web-1");
  EXPECT_EQ(js[0]["state"], "running");
  EXPECT_EQ(js[0]["labels"]["tier"], "db");
  EXPECT_GT(js[0]["shim_pid"].get<int>(), 1);

  auto started_twice = run_moat({"start", "web-1"});
  EXPECT_EQ(started_twice.exit_code, 125);
  EXPECT_NE(started_twice.err.find("sandbox web-1 is already running"), std::string::npos) << started_twice.err;
  auto rm_running = run_moat({"rm", "web-1"});
  EXPECT_EQ(rm_running.exit_code, 125);
  EXPECT_NE(rm_running.err.find("is running; stop it first, or remove it with -f"), std::string::npos);
  auto missing = run_moat({"stop", "nope"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("no such sandbox: nope"), std::string::npos);

  EXPECT_EQ(run_moat({"rm", "-f", "web-1", other}).exit_code, 0);
  EXPECT_EQ(run_moat({"ls", "-q"}).out, "");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmSandboxManager, TenParallelCreatesAllRun) {
  constexpr int kCount = 10;
  std::vector<std::future<Outcome>> runs;
  for (int i = 0; i < kCount; ++i)
    runs.push_back(std::async(std::launch::async, [i] {
      return run_moat({"run", "-d", "--name", "par-" + std::to_string(i), "--rootfs-dir", busybox_rootfs()});
    }));
  for (auto& r : runs) {
    Outcome o = r.get();
    EXPECT_EQ(o.exit_code, 0) << o.err;
  }
  auto ls = run_moat({"ls", "--format", "json"});
  auto js = Json::parse(ls.out, nullptr, false);
  ASSERT_TRUE(js.is_array()) << ls.out << ls.err;
  EXPECT_EQ(js.size(), static_cast<std::size_t>(kCount)) << ls.out << ls.err;
  for (const auto& s : js) EXPECT_EQ(s["state"], "running") << s.dump();
  std::vector<std::future<Outcome>> rms;
  for (int i = 0; i < kCount; ++i)
    rms.push_back(std::async(std::launch::async, [i] { return run_moat({"rm", "-f", "par-" + std::to_string(i)}); }));
  for (auto& r : rms) {
    Outcome o = r.get();
    EXPECT_EQ(o.exit_code, 0) << o.err;
  }
  EXPECT_TRUE(leftover_sandboxes().empty());
  EXPECT_TRUE(processes_mentioning(test_home() + "/sandboxes/").empty());
}

TEST(VmSandboxManager, KilledShimIsCrashedAndRmLeavesNothing) {
  std::string id = create_sandbox({"--name", "victim"});
  int shim_pid = inspect(id).value("shim_pid", 0);
  ASSERT_GT(shim_pid, 1);
  ASSERT_EQ(::kill(shim_pid, SIGKILL), 0);
  // QEMU dies with its shim (PR_SET_PDEATHSIG).
  for (int i = 0; i < 100 && !processes_mentioning(sandbox_dir(id)).empty(); ++i) ::usleep(50000);
  EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty());
  auto ls = run_moat({"ls"});
  EXPECT_NE(ls.out.find("victim"), std::string::npos);
  EXPECT_NE(ls.out.find("crashed"), std::string::npos) << ls.out;
  Json j = inspect("victim");
  EXPECT_EQ(j.value("reason", ""), "the shim was killed");
  struct stat st {};
  EXPECT_NE(::stat((sandbox_dir(id) + "/control.sock").c_str(), &st), 0) << "socket left behind";
  auto exec = run_moat({"exec", "victim", "--", "true"});
  EXPECT_EQ(exec.exit_code, 125);
  EXPECT_NE(exec.err.find("is not running (crashed)"), std::string::npos) << exec.err;
  // A crashed sandbox starts again, with its disk.
  ASSERT_EQ(run_moat({"start", "victim"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "victim", "--", "echo", "back"}).out, "back\n");
  EXPECT_EQ(run_moat({"rm", "-f", "victim"}).exit_code, 0);
  EXPECT_NE(::stat(sandbox_dir(id).c_str(), &st), 0);
  EXPECT_TRUE(processes_mentioning(sandbox_dir(id)).empty());
}

// moat/events.h: a following watcher is told of a VM that died even when no
// other moat call looks at the sandbox, and `moat events` lists each change
// once, in order.
TEST(VmSandboxManager, EventsTellEveryChangeAndACrashToAFollowingWatcher) {
  RuntimeOptions options;
  options.home = test_home();
  ASSERT_TRUE(configure_runtime(options).ok());
  std::uint64_t before = 0;
  ASSERT_TRUE(watch_sandbox_events({}, [&](const SandboxEvent& e) {
                before = e.seq;
                return true;
              }).ok());
  std::string id = create_sandbox({"--name", "watched"});

  std::mutex mu;
  std::vector<SandboxEvent> seen;
  std::atomic<bool> crashed{false}, give_up{false};
  std::thread watcher([&] {
    SandboxEventOptions o;
    o.after = before;
    o.follow = true;
    o.cancelled = [&] { return give_up.load(); };
    auto st = watch_sandbox_events(o, [&](const SandboxEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(e);
      if (e.kind == SandboxEventKind::kCrashed) crashed = true;
      return !crashed;
    });
    EXPECT_TRUE(st.ok()) << st.error().message;
  });
  int shim_pid = inspect(id).value("shim_pid", 0);
  ASSERT_GT(shim_pid, 1);
  ASSERT_EQ(::kill(shim_pid, SIGKILL), 0);
  // Only the watcher looks; give it a generous while under TCG.
  for (int i = 0; i < 300 && !crashed; ++i) ::usleep(100000);
  give_up = true;
  watcher.join();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kind, SandboxEventKind::kCreated);
  EXPECT_EQ(seen[1].kind, SandboxEventKind::kStarted);
  EXPECT_EQ(seen[2].kind, SandboxEventKind::kCrashed);
  EXPECT_EQ(seen[2].reason, "the shim was killed");
  for (const auto& e : seen) {
    EXPECT_EQ(e.id, id);
    EXPECT_EQ(e.name, "watched");
  }

  ASSERT_EQ(run_moat({"start", "watched"}).exit_code, 0);
  ASSERT_EQ(run_moat({"stop", "watched"}).exit_code, 0);
  ASSERT_EQ(run_moat({"rm", "watched"}).exit_code, 0);
  auto listed = run_moat({"events", "--format", "json", "--since", std::to_string(seen.back().seq)});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  std::vector<std::string> kinds;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    Json j = Json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_EQ(j.value("name", ""), "watched");
    kinds.push_back(j.value("event", "") + (j.value("reason", "").empty() ? "" : ": " + j.value("reason", "")));
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"started", "stopped: stop requested by a client", "removed"}));
}

TEST(VmSandboxManager, IdleTimeoutAndMaxDurationStopTheSandbox) {
  std::string capped = run_detached({"--name", "capped", "--max-duration", "4"});
  std::string idle = run_detached({"--name", "idler", "--idle-timeout", "5s"});
  // A command keeps the idle clock from running, but not the max-duration one.
  auto busy = run_moat({"exec", "idler", "--", "sleep", "6"});
  EXPECT_EQ(busy.exit_code, 0) << busy.err;
  auto cut = run_moat({"exec", "capped", "--", "sleep", "60"});
  EXPECT_EQ(cut.exit_code, 125);
  EXPECT_NE(cut.err.find("stopped"), std::string::npos) << cut.err;
  Json c = wait_for_state("capped", "stopped", 60);
  EXPECT_EQ(c.value("state", ""), "stopped");
  EXPECT_EQ(c.value("reason", ""), "max duration of 4 s reached");
  Json i = wait_for_state("idler", "stopped", 60);
  EXPECT_EQ(i.value("state", ""), "stopped");
  EXPECT_EQ(i.value("reason", ""), "idle for 5 s");
  auto bad = run_moat({"run", "-d", "--idle-timeout", "soon", "--rootfs-dir", busybox_rootfs()});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("--idle-timeout soon: expected a duration"), std::string::npos) << bad.err;
  EXPECT_EQ(run_moat({"rm", idle, capped}).exit_code, 0);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(VmSandboxManager, LogsShowConsoleAndCommandHistory) {
  std::string id = create_sandbox({"--name", "logged"});
  EXPECT_EQ(run_moat({"exec", "logged", "--", "sh", "-c", "exit 4"}).exit_code, 4);
  EXPECT_EQ(run_moat({"exec", "logged", "--", "echo", "hi"}).exit_code, 0);
  auto logs = run_moat({"logs", "logged"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("--- commands ---"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] exec sh -c exit 4\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] exit 4\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] exec echo hi\n"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("] exit 0\n"), std::string::npos) << logs.out;
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

TEST(VmSandboxManager, FullUpperDiskIsEnospcInTheGuestOnly) {
  std::string id = create_sandbox({"--disk-size", "64"});
  auto fill = run_moat({"exec", id, "--", "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=200 2>&1; echo rc=$?"});
  EXPECT_NE(fill.out.find("No space left on device"), std::string::npos) << fill.out;
  EXPECT_NE(fill.out.find("rc=1"), std::string::npos) << fill.out;
  // The host file stays at its sparse size bound, and the sandbox works on.
  struct stat st {};
  ASSERT_EQ(::stat((sandbox_dir(id) + "/upper.ext4").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 << 20);
  auto after = run_moat({"exec", id, "--", "sh", "-c", "rm /big && echo ok > /small && cat /small"});
  EXPECT_EQ(after.out, "ok\n") << after.err;
  EXPECT_EQ(run_moat({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
