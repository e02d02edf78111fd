// The exec client against a scripted peer that sends wrongly typed fields
// (no VM): whatever the guest puts in a payload, run_exec returns a value
// and never throws.
#include "sandbox/exec_handle.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "proto/text.h"

namespace moat::sandbox {
namespace {

using proto::Json;
using proto::Message;

// A one-connection server that answers the handshake with `hello`, waits for
// the exec request and then sends `script(stream)`.
class ScriptedPeer {
 public:
  ScriptedPeer(Json hello, std::function<std::vector<Message>(std::uint32_t)> script) {
    char tmpl[] = "/tmp/moat-exec-client-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/s.sock";
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_.get(), 1), 0);
    thread_ = std::thread([this, hello = std::move(hello), script = std::move(script)] { serve(hello, script); });
  }
  ~ScriptedPeer() {
    thread_.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  void serve(const Json& hello, const std::function<std::vector<Message>(std::uint32_t)>& script) {
    UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    proto::FrameDecoder d;
    std::string out = proto::encode_message(proto::make_message(0, hello.contains("code") ? "error" : "hello", hello));
    bool sent_script = false;
    char buf[65536];
    while (true) {
      if (!out.empty()) {
        if (::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL) < 0) return;
        out.clear();
      }
      ssize_t n = ::read(c.get(), buf, sizeof(buf));
      if (n <= 0) return;
      d.feed(buf, static_cast<std::size_t>(n));
      proto::Frame f;
      while (true) {
        auto got = d.next(f);
        if (!got.ok() || !*got) break;
        auto m = proto::decode_message(f);
        if (m.ok() && m->type == proto::msg::kExec && !sent_script) {
          for (const auto& reply : script(f.stream)) proto::encode_message(reply, out);
          sent_script = true;
        }
      }
    }
  }

  std::string dir_, path_;
  UniqueFd listen_;
  std::thread thread_;
};

struct Outcome {
  Result<ExitStatus> status = make_error("not run");
  std::string out;
};

Outcome run_against(ScriptedPeer& peer) {
  Outcome o;
  auto conn = AgentConnection::connect(peer.path());
  if (!conn) {
    o.status = conn.error();
    return o;
  }
  ExecOptions opts;
  opts.argv = {"echo", "caf\xe9"};
  ExecIo io;
  io.on_stdout = [&](std::string_view s) { o.out += s; };
  o.status = run_exec(*conn, opts, io);
  conn->close();
  return o;
}

Message exit_ok(std::uint32_t s) {
  return proto::make_message(s, proto::msg::kExit, proto::to_payload(proto::ExitStatus{}), proto::kFlagEndStream);
}

TEST(ExecClient, NonFatalErrorWithAnIntegerMessageIsIgnored) {
  ScriptedPeer peer(Json{{"version", 1}, {"agent", 7}}, [](std::uint32_t s) {
    return std::vector<Message>{
        proto::make_message(s, proto::msg::kStarted, Json{{"pid", "x"}}),
        proto::make_message(s, proto::msg::kError, Json{{"code", 1}, {"message", 7}}),
        proto::make_data_message(s, proto::msg::kStdout, "caf\xe9\n"), exit_ok(s)};
  });
  Outcome o = run_against(peer);
  ASSERT_TRUE(o.status.ok()) << o.status.error().message;
  EXPECT_EQ(o.status->code, 0);
  EXPECT_EQ(o.out, "caf\xe9\n");
}

TEST(ExecClient, FatalErrorWithAnIntegerMessageIsAnError) {
  ScriptedPeer peer(Json{{"version", 1}}, [](std::uint32_t s) {
    return std::vector<Message>{proto::make_message(s, proto::msg::kError, Json{{"message", 7}}, proto::kFlagEndStream)};
  });
  Outcome o = run_against(peer);
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.error().message, "unknown error");
}

TEST(ExecClient, FatalErrorKeepsTheBytesOfItsMessage) {
  ScriptedPeer peer(Json{{"version", 1}}, [](std::uint32_t s) {
    Json p = {{"code", "bad_cwd"}, {"message", "working directory /caf\xe9 does not exist"}};  // text, not UTF-8
    return std::vector<Message>{proto::make_message(s, proto::msg::kError, p, proto::kFlagEndStream)};
  });
  Outcome o = run_against(peer);
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.error().message, "working directory /caf\xe9 does not exist");
  // The agent's error code is kept as a kind callers can branch on.
  EXPECT_EQ(o.status.error().kind(), ErrorKind::kNotFound);
}

TEST(ExecClient, HandshakeRefusalWithAWronglyTypedMessage) {
  ScriptedPeer peer(Json{{"code", "x"}, {"message", Json::array({1, 2})}}, [](std::uint32_t) {
    return std::vector<Message>{};
  });
  Outcome o = run_against(peer);
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.error().message, "handshake refused: ?");
}

}  // namespace
}  // namespace moat::sandbox
