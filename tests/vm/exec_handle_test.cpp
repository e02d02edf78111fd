// moat::Exec handles (include/moat/exec.h) against a real sandbox: signals,
// resizes, stdin written piecewise and closed, waits that time out, kill, the
// pull interface, and a hundred commands at once on one sandbox.
#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "moat/runtime.h"
#include "moat/sandbox.h"
#include "tests/vm/harness.h"

namespace moat::test {
namespace {

// A command, its stdin open or not (plain assignments: designated
// initializers that skip members warn under -Wextra).
ExecOptions command(std::vector<std::string> argv, bool stdin_open = false) {
  ExecOptions o;
  o.argv = std::move(argv);
  o.stdin_open = stdin_open;
  return o;
}

// Callbacks that take stdout only.
ExecCallbacks on_stdout(std::function<void(std::string_view)> f) {
  ExecCallbacks cb;
  cb.on_stdout = std::move(f);
  return cb;
}

// Reads pulled output until `needle` appears in stdout; the exit status if
// the command ended first.
std::string read_stdout_until(Exec& ex, const std::string& needle) {
  std::string out;
  while (out.find(needle) == std::string::npos) {
    auto piece = ex.read(std::chrono::milliseconds(60000));
    if (!piece.ok()) {
      ADD_FAILURE() << piece.error().message;
      return out;
    }
    if (!*piece) {
      ADD_FAILURE() << "no \"" << needle << "\" within 60 s; got \"" << out << "\"";
      return out;
    }
    if ((*piece)->kind == ExecOutput::Kind::kExit) {
      ADD_FAILURE() << "ended before \"" << needle << "\"; got \"" << out << "\"";
      return out;
    }
    if ((*piece)->kind == ExecOutput::Kind::kStdout) out += (*piece)->data;
  }
  return out;
}

ExitStatus exit_of(Exec& ex) {
  auto st = ex.wait(std::chrono::milliseconds(60000));
  if (!st.ok()) {
    ADD_FAILURE() << st.error().message;
    return {};
  }
  if (!*st) {
    ADD_FAILURE() << "the command did not end within 60 s";
    return {};
  }
  return **st;
}

class VmExecHandle : public ::testing::Test {
 protected:
  void SetUp() override {
    id_ = create_sandbox({"--cpus", "2", "--memory", "512"});
    // The API in this process uses the home the CLI runs with.
    RuntimeOptions options;
    options.home = test_home();
    ASSERT_TRUE(configure_runtime(options).ok());
    auto sb = Sandbox::open(id_);
    ASSERT_TRUE(sb.ok()) << sb.error().message;
    sb_.emplace(std::move(*sb));
  }
  void TearDown() override {
    sb_.reset();
    EXPECT_EQ(run_moat({"rm", "-f", id_}).exit_code, 0);
  }
  Sandbox& sb() { return *sb_; }

  std::string id_;
  std::optional<Sandbox> sb_;
};

TEST_F(VmExecHandle, SignalsReachTheCommandAndEndIt) {
  auto ex = sb().start_exec(command({"sh", "-c", "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 1; done"}));
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  read_stdout_until(*ex, "ready\n");
  ASSERT_TRUE(ex->signal(SIGUSR1).ok());
  read_stdout_until(*ex, "got-usr1\n");
  EXPECT_GT(ex->pid(), 0);
  ASSERT_TRUE(ex->signal(SIGTERM).ok());
  // The pull interface ends with the exit, and keeps reporting it.
  ExitStatus st;
  while (true) {
    auto piece = ex->read(std::chrono::milliseconds(60000));
    ASSERT_TRUE(piece.ok()) << piece.error().message;
    ASSERT_TRUE(piece->has_value()) << "no exit within 60 s";
    if ((*piece)->kind == ExecOutput::Kind::kExit) {
      st = (*piece)->status;
      break;
    }
  }
  EXPECT_EQ(st.signal, SIGTERM);
  EXPECT_EQ(st.shell_code(), 128 + SIGTERM);
  auto again = ex->read(std::chrono::milliseconds(0));
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->kind, ExecOutput::Kind::kExit);
  // Signalling an ended command says so.
  auto late = ex->signal(SIGTERM);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().kind(), ErrorKind::kNotFound);
}

TEST_F(VmExecHandle, ResizeChangesTheTerminalSize) {
  ExecOptions o = command({"sh", "-c", "stty size; read x; stty size"}, /*stdin_open=*/true);
  o.tty = true;
  o.rows = 24;
  o.cols = 80;
  auto ex = sb().start_exec(o);
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  read_stdout_until(*ex, "24 80");
  ASSERT_TRUE(ex->resize(40, 132).ok());
  ASSERT_TRUE(ex->write_stdin("\n").ok());
  read_stdout_until(*ex, "40 132");
  EXPECT_EQ(exit_of(*ex).code, 0);
}

TEST_F(VmExecHandle, StdinWrittenInPiecesAndClosedIsReadToTheEnd) {
  std::mutex mu;
  std::string out;
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view s) {
    std::lock_guard lk(mu);
    out += s;
  };
  auto ex = sb().start_exec(command({"sha256sum"}, /*stdin_open=*/true), cb);
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  // More than the agent's window (256 KiB), so write_stdin has to wait for
  // the guest and read the stream itself: nobody is in wait() yet.
  std::string data = random_bytes(3 * 1024 * 1024 + 17);
  for (std::size_t off = 0; off < data.size(); off += 100000)
    ASSERT_TRUE(ex->write_stdin(std::string_view(data).substr(off, 100000)).ok());
  ASSERT_TRUE(ex->close_stdin().ok());
  auto st = exit_of(*ex);
  EXPECT_EQ(st.code, 0);
  EXPECT_EQ(out, sha256_hex(data) + "  -\n");
  // stdin is closed now.
  auto late = ex->write_stdin("x");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, EPIPE);
}

TEST_F(VmExecHandle, WaitTimesOutThenKillEndsTheCommand) {
  auto ex = sb().start_exec(command({"sleep", "600"}), on_stdout([](std::string_view) {}));
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  auto t0 = std::chrono::steady_clock::now();
  auto st = ex->wait(std::chrono::milliseconds(300));
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_FALSE(st->has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  ASSERT_TRUE(ex->kill().ok());
  EXPECT_EQ(exit_of(*ex).signal, SIGKILL);
}

TEST_F(VmExecHandle, CancelStopsAWaitOnAnotherThread) {
  auto ex = sb().start_exec(command({"sh", "-c", "trap '' TERM; sleep 600"}), on_stdout([](std::string_view) {}));
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (void)ex->signal(SIGTERM);  // ignored by the command
    ex->cancel();
  });
  auto st = ex->wait(std::chrono::milliseconds(60000));
  canceller.join();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().kind(), ErrorKind::kInterrupted);
  EXPECT_NE(st.error().message.find("did not end after SIGTERM"), std::string::npos) << st.error().message;
  // The sandbox still runs commands.
  ExecIo io;
  auto ok = sb().exec(command({"true"}), io);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->code, 0);
}

TEST_F(VmExecHandle, AHundredCommandsAtOnceKeepTheirStreamsApart) {
  constexpr int kCount = 100;
  std::vector<Exec> execs;
  for (int i = 0; i < kCount; ++i) {
    // Each waits for its own line on stdin, so all hundred run at once.
    auto ex = sb().start_exec(
        command({"sh", "-c", "read x; echo \"$x-$0\"; exit $(( $0 % 7 ))", std::to_string(i)}, /*stdin_open=*/true));
    ASSERT_TRUE(ex.ok()) << "exec " << i << ": " << ex.error().message;
    execs.push_back(std::move(*ex));
  }
  for (int i = kCount - 1; i >= 0; --i) {
    ASSERT_TRUE(execs[static_cast<std::size_t>(i)].write_stdin("line" + std::to_string(i) + "\n").ok());
    ASSERT_TRUE(execs[static_cast<std::size_t>(i)].close_stdin().ok());
  }
  for (int i = 0; i < kCount; ++i) {
    auto& ex = execs[static_cast<std::size_t>(i)];
    std::string want = "line" + std::to_string(i) + "-" + std::to_string(i) + "\n";
    EXPECT_EQ(read_stdout_until(ex, want), want) << "exec " << i;
    EXPECT_EQ(exit_of(ex).code, i % 7) << "exec " << i;
  }
}

}  // namespace
}  // namespace moat::test
