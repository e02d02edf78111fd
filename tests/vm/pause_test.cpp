// `moat pause` / `moat resume` (include/moat/sandboxes.h): a paused
// sandbox's vCPUs stand still (a busy guest costs no CPU, a counter does not
// count) and go on from where they were; new commands are refused at once
// with a clear error while one already running completes after the resume;
// the guest's clock is the host's again after it; stop works on a paused
// sandbox, and neither verb works on one that is not running.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "proto/message.h"
#include "sandbox/agent_connection.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

// User + system CPU time of a process, in clock ticks.
long long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return utime + stime;
}

// The counter's value (the guest renames each value into place, so a read
// never sees the file between a truncation and its write).
long long guest_count(const std::string& name) {
  auto o = run_moat({"exec", name, "--", "cat", "/tmp/count"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  return o.exit_code == 0 ? std::stoll(o.out) : -1;
}

// `paused` of `moat inspect NAME`: "true", "false", or "" if absent.
std::string paused_of(const std::string& name) {
  auto o = run_moat({"inspect", name});
  auto all = nlohmann::json::parse(o.out, nullptr, false);
  if (o.exit_code != 0 || !all.is_array() || all.size() != 1 || !all[0].contains("paused")) return "";
  return all[0]["paused"].dump();
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(VmPause, TheGuestStandsStillWhilePausedAndGoesOnFromWhereItWas) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", "pz", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  std::string dir = inspected_field("pz", "dir");
  pid_t qemu = qemu_of(dir);
  ASSERT_GT(qemu, 0);
  // A counter ten times a second, and a spinning loop.
  ASSERT_EQ(run_moat({"exec", "pz", "--", "sh", "-c",
                      "(i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done) >/dev/null 2>&1 & "
                      "(while :; do :; done) >/dev/null 2>&1 &"})
                .exit_code,
            0);
  for (int i = 0; i < 100 && guest_count("pz") < 5; ++i) sleep_ms(100);
  ASSERT_GE(guest_count("pz"), 5);
  // A command under way when the pause comes completes after the resume.
  auto in_flight = std::async(std::launch::async, [] {
    return run_moat({"exec", "pz", "--", "sh", "-c", "sleep 1; echo done"});
  });
  sleep_ms(300);

  auto paused = run_moat({"pause", "pz"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused_of("pz"), "true");
  EXPECT_EQ(inspected_field("pz", "state"), "running");
  auto listed = run_moat({"ls"});
  EXPECT_NE(listed.out.find(" paused "), std::string::npos) << listed.out;
  EXPECT_EQ(run_moat({"pause", "pz"}).exit_code, 0) << "pausing a paused sandbox does nothing";

  // No CPU for a spinning guest: QEMU's time hardly moves in 1.5 s.
  long long before = cpu_ticks(qemu);
  sleep_ms(1500);
  long long spent = cpu_ticks(qemu) - before;
  EXPECT_LT(spent, sysconf(_SC_CLK_TCK) / 5) << "QEMU used " << spent << " ticks while paused";

  // New work is refused at once, saying why.
  auto refused = run_moat({"exec", "pz", "--", "true"});
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_NE(refused.err.find("the sandbox is paused"), std::string::npos) << refused.err;
  EXPECT_LT(refused.seconds, 5.0);
  auto cp = run_moat({"cp", "pz:/tmp/count", test_home() + "/count"});
  EXPECT_NE(cp.exit_code, 0);
  EXPECT_NE(cp.err.find("paused"), std::string::npos) << cp.err;
  EXPECT_EQ(in_flight.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the command in flight ended while the guest was paused";

  auto resumed = run_moat({"resume", "pz"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(paused_of("pz"), "false");
  EXPECT_EQ(run_moat({"resume", "pz"}).exit_code, 0) << "resuming a running sandbox does nothing";
  auto done = in_flight.get();
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_EQ(done.out, "done\n");

  // The counter goes on from where it stood (about 1.5 s of counting was
  // not done), and counts again.
  long long after = guest_count("pz");
  sleep_ms(1000);
  long long later = guest_count("pz");
  EXPECT_GE(later, after + 3) << "the counter does not count after the resume";
  // The guest's wall clock is the host's again.
  auto date = run_moat({"exec", "pz", "--", "date", "+%s"});
  ASSERT_EQ(date.exit_code, 0);
  long long guest_now = std::stoll(date.out);
  long long host_now = static_cast<long long>(::time(nullptr));
  EXPECT_LE(std::llabs(guest_now - host_now), 2) << "guest " << guest_now << ", host " << host_now;
  EXPECT_EQ(run_moat({"rm", "-f", "pz"}).exit_code, 0);
}

// A memory snapshot's save leaves the VM standing until its maker resumes
// it. Asked with resume_on_leave (as the library asks), a maker that dies
// in between (kill -9 of `moat snapshot create --memory`, of `moat run -d`
// making a warm-start template) does not leave the sandbox paused: the
// shim runs it again when the maker's connection goes. Without it, the
// sandbox stays paused as asked.
TEST(VmPause, ASaverThatLeavesBeforeItsResumeLeavesTheSandboxRunning) {
  ASSERT_EQ(run_moat({"run", "-d", "--cold", "--name", "lease", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  std::string dir = inspected_field("lease", "dir");
  auto save = [&](bool lease, const std::string& name) {
    auto conn = sandbox::AgentConnection::connect(dir + "/control.sock");
    EXPECT_TRUE(conn) << conn.error().message;
    if (!conn) return;
    proto::Json p = {{"to_file", test_home() + "/" + name + ".state"}, {"ram_file", test_home() + "/" + name + ".ram"}};
    if (lease) p["resume_on_leave"] = true;
    EXPECT_TRUE(conn->send(proto::make_message(proto::kControlStream, proto::msg::kPause, p)));
    auto reply = conn->receive(60000);
    ASSERT_TRUE(reply && *reply);
    EXPECT_EQ((*reply)->type, "ok") << (*reply)->payload.dump();
    EXPECT_EQ(paused_of("lease"), "true");
  };  // the connection closes without a resume

  save(true, "leased");
  std::string state;
  for (int i = 0; i < 100 && (state = paused_of("lease")) != "false"; ++i) sleep_ms(100);
  EXPECT_EQ(state, "false") << "the VM stayed paused after its saver left";
  auto alive = run_moat({"exec", "lease", "--", "echo", "runs"});
  EXPECT_EQ(alive.out, "runs\n") << alive.err;
  std::ifstream shim_log(dir + "/shim.log");
  std::string logged((std::istreambuf_iterator<char>(shim_log)), std::istreambuf_iterator<char>());
  EXPECT_NE(logged.find("the client that saved the VM's state left before resuming it: the VM runs again"),
            std::string::npos)
      << logged;

  save(false, "plain");
  sleep_ms(1500);
  EXPECT_EQ(paused_of("lease"), "true") << "a save without the lease was resumed";
  EXPECT_EQ(run_moat({"resume", "lease"}).exit_code, 0);
  EXPECT_EQ(run_moat({"exec", "lease", "--", "echo", "runs"}).out, "runs\n");
  EXPECT_EQ(run_moat({"rm", "-f", "lease"}).exit_code, 0);
}

TEST(VmPause, StopWorksOnAPausedSandboxAndOnlyARunningOneCanPause) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", "pz2", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  std::string dir = inspected_field("pz2", "dir");
  ASSERT_EQ(run_moat({"pause", "pz2"}).exit_code, 0);
  EXPECT_EQ(access((dir + "/paused").c_str(), F_OK), 0);
  // The guest powers off cleanly after being resumed, well before the
  // stop's 10 s timeout would have QEMU killed.
  auto stopped = run_moat({"stop", "pz2"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_LT(stopped.seconds, 8.0);
  EXPECT_EQ(inspected_field("pz2", "state"), "stopped");
  EXPECT_EQ(paused_of("pz2"), "false");
  EXPECT_NE(access((dir + "/paused").c_str(), F_OK), 0) << "the marker goes with the shim";
  for (const char* verb : {"pause", "resume"}) {
    auto o = run_moat({verb, "pz2"});
    EXPECT_EQ(o.exit_code, 125) << verb;
    EXPECT_NE(o.err.find("sandbox pz2 is not running"), std::string::npos) << o.err;
  }
  // Started again, it is simply running.
  ASSERT_EQ(run_moat({"start", "pz2"}).exit_code, 0);
  EXPECT_EQ(paused_of("pz2"), "false");
  EXPECT_EQ(run_moat({"exec", "pz2", "--", "true"}).exit_code, 0);
  auto missing = run_moat({"pause", "no-such-sandbox"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no such sandbox"), std::string::npos) << missing.err;
  EXPECT_EQ(run_moat({"rm", "-f", "pz2"}).exit_code, 0);
}

bool process_alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

TEST(VmPause, ToDiskEndsTheVmAndResumeGoesOnFromWhereItWas) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", "pd", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  std::string dir = inspected_field("pd", "dir");
  pid_t qemu = qemu_of(dir);
  auto record = nlohmann::json::parse(run_moat({"inspect", "pd"}).out, nullptr, false);
  ASSERT_TRUE(record.is_array() && record.size() == 1);
  pid_t shim = record[0].value("shim_pid", 0);
  ASSERT_GT(qemu, 0);
  ASSERT_GT(shim, 0);
  // A counter in the background, and a file only in the guest's memory.
  ASSERT_EQ(run_moat({"exec", "pd", "--", "sh", "-c",
                      "mkdir -p /dev/shm/k && echo kept > /dev/shm/k/f && "
                      "(i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done) >/dev/null 2>&1 &"})
                .exit_code,
            0);
  for (int i = 0; i < 100 && guest_count("pd") < 5; ++i) sleep_ms(100);
  // A command under way ends with an error that says why; it does not hang.
  auto in_flight = std::async(std::launch::async, [] {
    return run_moat({"exec", "pd", "--", "sh", "-c", "sleep 30; echo late"});
  });
  sleep_ms(500);

  auto saved = run_moat({"pause", "--to-disk", "pd"});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  EXPECT_EQ(inspected_field("pd", "state"), "stopped");
  EXPECT_EQ(inspected_field("pd", "reason"), "paused to disk");
  auto all = nlohmann::json::parse(run_moat({"inspect", "pd"}).out, nullptr, false);
  ASSERT_TRUE(all.is_array() && all.size() == 1);
  EXPECT_EQ(all[0]["saved"], true);
  EXPECT_EQ(all[0]["paused"], false);
  EXPECT_NE(run_moat({"ls"}).out.find(" saved "), std::string::npos);
  // Nothing of the VM is left running: no QEMU, no shim; the state is a file.
  for (int i = 0; i < 50 && (process_alive(qemu) || process_alive(shim)); ++i) sleep_ms(100);
  EXPECT_FALSE(process_alive(qemu)) << "QEMU still runs";
  EXPECT_FALSE(process_alive(shim)) << "the shim still runs";
  // The devices' state, and the RAM apart: the guest's size, sparse, with
  // the pages it used.
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/memory.state").c_str(), &st), 0);
  EXPECT_GT(st.st_size, 0);
  EXPECT_NE(access((dir + "/memory.state.tmp").c_str(), F_OK), 0);
  ASSERT_EQ(::stat((dir + "/memory.ram").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 256ll << 20);
  EXPECT_GT(st.st_blocks * 512ll, 4ll << 20) << "the guest's pages are not in it";
  EXPECT_LT(st.st_blocks * 512ll, 200ll << 20) << "pages the guest never used take space";
  EXPECT_NE(access((dir + "/memory.ram.tmp").c_str(), F_OK), 0);
  auto ended = in_flight.get();
  EXPECT_NE(ended.exit_code, 0);
  EXPECT_NE(ended.err.find("paused to disk"), std::string::npos) << ended.err;
  auto refused = run_moat({"exec", "pd", "--", "true"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("not running"), std::string::npos) << refused.err;
  sleep_ms(1000);

  // Restored by a new shim: the counter goes on from where it stood (the
  // second it was on disk was not counted), the file in memory is there.
  auto resumed = run_moat({"resume", "pd"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(inspected_field("pd", "state"), "running");
  EXPECT_NE(access((dir + "/memory.state").c_str(), F_OK), 0) << "the state is live again, its file goes";
  EXPECT_NE(access((dir + "/memory.ram").c_str(), F_OK), 0) << "the RAM is read back, its file goes";
  long long after = guest_count("pd");
  sleep_ms(1000);
  long long later = guest_count("pd");
  EXPECT_GE(later, after + 3) << "the counter does not count after the restore";
  auto kept = run_moat({"exec", "pd", "--", "cat", "/dev/shm/k/f"});
  EXPECT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_EQ(kept.out, "kept\n");
  auto date = run_moat({"exec", "pd", "--", "date", "+%s"});
  ASSERT_EQ(date.exit_code, 0);
  EXPECT_LE(std::llabs(std::stoll(date.out) - static_cast<long long>(::time(nullptr))), 2);
  EXPECT_NE(qemu_of(dir), qemu) << "a new QEMU runs it";

  // Saved again and stopped: the state is discarded and start boots afresh
  // (no counter runs any more).
  // Its RAM was read back into the shim's memory: this save too leaves it
  // apart.
  ASSERT_EQ(run_moat({"pause", "--to-disk", "pd"}).exit_code, 0);
  ASSERT_EQ(::stat((dir + "/memory.state").c_str(), &st), 0);
  EXPECT_LT(st.st_size, 4ll << 20) << "the RAM is in the stream";
  EXPECT_EQ(access((dir + "/memory.ram").c_str(), F_OK), 0);
  auto stopped = run_moat({"stop", "pd"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_NE(access((dir + "/memory.state").c_str(), F_OK), 0);
  EXPECT_NE(access((dir + "/memory.ram").c_str(), F_OK), 0);
  auto again = nlohmann::json::parse(run_moat({"inspect", "pd"}).out, nullptr, false);
  EXPECT_EQ(again[0]["saved"], false);
  ASSERT_EQ(run_moat({"start", "pd"}).exit_code, 0);
  auto fresh = run_moat({"exec", "pd", "--", "sh", "-c", "test -e /dev/shm/k/f && echo kept || echo gone"});
  EXPECT_EQ(fresh.out, "gone\n");
  EXPECT_EQ(run_moat({"rm", "-f", "pd"}).exit_code, 0);
}

TEST(VmPause, ACorruptSavedStateIsRefusedAtRestoreAndStopDiscardsIt) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", "pdc", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  std::string dir = inspected_field("pdc", "dir");
  ASSERT_EQ(run_moat({"pause", "--to-disk", "pdc"}).exit_code, 0);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/memory.state").c_str(), &st), 0);
  ASSERT_EQ(::truncate((dir + "/memory.state").c_str(), st.st_size / 2), 0);
  auto refused = run_moat({"resume", "pdc"});
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_NE(refused.err.find("restoring the state saved by pause --to-disk"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("moat stop"), std::string::npos) << refused.err;
  EXPECT_NE(inspected_field("pdc", "state"), "running");
  EXPECT_EQ(access((dir + "/memory.state").c_str(), F_OK), 0) << "a failed restore keeps the state";
  EXPECT_EQ(access((dir + "/memory.ram").c_str(), F_OK), 0) << "a failed restore keeps the RAM";
  ASSERT_EQ(run_moat({"stop", "pdc"}).exit_code, 0);
  EXPECT_NE(access((dir + "/memory.state").c_str(), F_OK), 0);
  EXPECT_NE(access((dir + "/memory.ram").c_str(), F_OK), 0);
  auto started = run_moat({"start", "pdc"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(run_moat({"exec", "pdc", "--", "true"}).exit_code, 0);
  EXPECT_EQ(run_moat({"rm", "-f", "pdc"}).exit_code, 0);
}

// kill -9 of the shim at moments spread over a save: afterwards the sandbox
// has either its whole saved state (and resume goes on from it) or none
// (and start boots afresh); never a half file that a start would take.
TEST(VmPause, AShimKilledDuringASaveLeavesTheWholeStateOrNone) {
  ASSERT_EQ(run_moat({"run", "-d", "--name", "pdk", "--rootfs-dir", busybox_rootfs()}).exit_code, 0);
  std::string dir = inspected_field("pdk", "dir");
  int saved = 0, not_saved = 0;
  // -1: after the save finished (the kill then finds no shim): a whole state.
  for (int delay_ms : {0, 40, 80, 120, 160, 220, 300, -1}) {
    auto record = nlohmann::json::parse(run_moat({"inspect", "pdk"}).out, nullptr, false);
    ASSERT_TRUE(record.is_array() && record.size() == 1);
    pid_t shim = record[0].value("shim_pid", 0);
    ASSERT_GT(shim, 0);
    ASSERT_EQ(run_moat({"exec", "pdk", "--", "sh", "-c", "echo " + std::to_string(delay_ms) + " > /dev/shm/mark"})
                  .exit_code,
              0);
    auto pausing = std::async(std::launch::async, [] { return run_moat({"pause", "--to-disk", "pdk"}); });
    if (delay_ms < 0)
      pausing.wait();
    else
      sleep_ms(delay_ms);
    // Only that shim (a save that finished has ended it, and its pid may be
    // another process's by now).
    std::ifstream cmdline("/proc/" + std::to_string(shim) + "/cmdline");
    std::string argv0;
    std::getline(cmdline, argv0, '\0');
    if (argv0.find("moat-shim") != std::string::npos) ::kill(shim, SIGKILL);
    pausing.get();
    for (int i = 0; i < 50 && process_alive(shim); ++i) sleep_ms(100);
    ASSERT_FALSE(process_alive(shim));
    std::string state = inspected_field("pdk", "state");
    EXPECT_NE(state, "running") << "at " << delay_ms << " ms";
    bool has_state = access((dir + "/memory.state").c_str(), F_OK) == 0;
    auto again = run_moat({"resume", "pdk"});
    if (has_state) {
      ++saved;
      ASSERT_EQ(again.exit_code, 0) << "at " << delay_ms << " ms: " << again.err;
      auto mark = run_moat({"exec", "pdk", "--", "cat", "/dev/shm/mark"});
      EXPECT_EQ(mark.out, std::to_string(delay_ms) + "\n") << "the restored guest is the saved one";
    } else {
      ++not_saved;
      EXPECT_NE(again.exit_code, 0) << "nothing to resume at " << delay_ms << " ms";
      auto started = run_moat({"start", "pdk"});
      ASSERT_EQ(started.exit_code, 0) << "at " << delay_ms << " ms: " << started.err;
      auto mark = run_moat({"exec", "pdk", "--", "sh", "-c", "test -e /dev/shm/mark && echo kept || echo gone"});
      EXPECT_EQ(mark.out, "gone\n") << "a fresh boot";
    }
    for (const char* left : {"/memory.state.tmp", "/memory.ram.tmp", "/memory.ram"})
      EXPECT_NE(access((dir + left).c_str(), F_OK), 0) << left << " at " << delay_ms << " ms";
    EXPECT_EQ(inspected_field("pdk", "state"), "running");
  }
  std::printf("killed saves: %d left a whole state, %d none\n", saved, not_saved);
  EXPECT_GE(saved, 1) << "not even the save left to finish kept its state";
  EXPECT_GE(not_saved, 1) << "no kill landed during a save";
  EXPECT_EQ(run_moat({"rm", "-f", "pdk"}).exit_code, 0);
}

TEST(VmPause, ToDiskIsRefusedWhereTheStateCannotBeSavedAndNothingChanges) {
  std::string vol = test_home() + "/pd-vol";
  ASSERT_EQ(::mkdir(vol.c_str(), 0755) == 0 || errno == EEXIST, true);
  ASSERT_EQ(run_moat({"run", "-d", "--name", "pdv", "-v", vol + ":/data", "--rootfs-dir", busybox_rootfs()}).exit_code,
            0);
  auto refused = run_moat({"pause", "--to-disk", "pdv"});
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_NE(refused.err.find("with volumes cannot be paused to disk"), std::string::npos) << refused.err;
  EXPECT_EQ(inspected_field("pdv", "state"), "running");
  EXPECT_EQ(run_moat({"exec", "pdv", "--", "true"}).exit_code, 0);
  std::string dir = inspected_field("pdv", "dir");
  EXPECT_NE(access((dir + "/memory.state").c_str(), F_OK), 0);
  EXPECT_NE(access((dir + "/memory.state.tmp").c_str(), F_OK), 0);
  EXPECT_EQ(run_moat({"rm", "-f", "pdv"}).exit_code, 0);
}

}  // namespace
}  // namespace moat::test
