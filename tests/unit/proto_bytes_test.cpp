// Bytes that are not UTF-8 (argv, paths, names) and wrongly typed fields
// from an untrusted peer: the text helpers, the wire encoding of exec and
// file requests, error payloads and the exec history (no VM).
#include <gtest/gtest.h>

#include "proto/exec.h"
#include "proto/exec_log.h"
#include "proto/file_ops.h"
#include "proto/message.h"
#include "proto/text.h"

namespace moat::proto {
namespace {

const std::string kCafe = "caf\xe9";  // Latin-1 "café": not UTF-8

Message through_wire(const Message& m) {
  std::string wire = encode_message(m);
  FrameDecoder d;
  d.feed(wire);
  Frame f;
  auto got = d.next(f);
  EXPECT_TRUE(got.ok() && *got);
  auto back = decode_message(f);
  EXPECT_TRUE(back.ok()) << back.error().message;
  return back.ok() ? *back : Message{};
}

TEST(ProtoText, Utf8Validation) {
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_utf8(kCafe));
  EXPECT_FALSE(is_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(is_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_utf8("\xe2\x82"));          // cut short
}

TEST(ProtoText, DumpLossyNeverThrowsAndReplaces) {
  Json j = {{"argv", {"echo", kCafe}}};
  EXPECT_THROW((void)j.dump(), Json::type_error);  // what crashed the shim
  EXPECT_EQ(dump_lossy(j), "{\"argv\":[\"echo\",\"caf\xef\xbf\xbd\"]}");
  EXPECT_EQ(lossy_utf8(kCafe), "caf\xef\xbf\xbd");
}

TEST(ProtoText, ReversibleJsonFormKeepsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (const std::string& s : {std::string("plain"), kCafe, all, std::string()}) {
    std::string text = bytes_to_json(s).dump();  // must not throw
    auto back = bytes_from_json(Json::parse(text));
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(bytes_to_json(kCafe).dump(), "{\"hex\":\"636166e9\"}");
  EXPECT_EQ(bytes_to_json("plain").dump(), "\"plain\"");
  EXPECT_FALSE(bytes_from_json(Json{{"hex", "e"}}).has_value());
  EXPECT_FALSE(bytes_from_json(Json{{"hex", "zz"}}).has_value());
  EXPECT_FALSE(bytes_from_json(Json(7)).has_value());
}

TEST(ProtoBytes, ExecRequestCarriesBytesAsByteStrings) {
  ExecRequest r;
  r.argv = {"echo", kCafe};
  r.env = {"K=" + kCafe};
  r.cwd = "/" + kCafe;
  r.user = kCafe;
  Message back = through_wire(make_message(1, msg::kExec, to_payload(r)));
  EXPECT_TRUE(back.payload["argv"][1].is_binary());
  EXPECT_TRUE(back.payload["cwd"].is_binary());
  auto parsed = parse_exec_request(back.payload);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->argv, r.argv);
  EXPECT_EQ(parsed->env, r.env);
  EXPECT_EQ(parsed->cwd, r.cwd);
  EXPECT_EQ(parsed->user, r.user);
}

TEST(ProtoBytes, ExecRequestStillAcceptsTextStrings) {
  Json p = {{"argv", {"ls", "-l"}}, {"cwd", "/tmp"}, {"user", "nobody"}};
  auto parsed = parse_exec_request(p);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->argv, (std::vector<std::string>{"ls", "-l"}));
  EXPECT_EQ(parsed->cwd, "/tmp");
}

TEST(ProtoBytes, FileRequestsAndRepliesCarryBytes) {
  FileRequest r;
  r.op = std::string(msg::kRename);
  r.path = "/" + kCafe;
  r.to = "/x" + kCafe;
  Message back = through_wire(make_message(1, msg::kRename, to_payload(r)));
  EXPECT_TRUE(back.payload["path"].is_binary());
  auto parsed = parse_file_request(msg::kRename, back.payload);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->path, r.path);
  EXPECT_EQ(parsed->to, r.to);

  DirEntry e;
  e.name = kCafe;
  e.stat.type = FileType::kSymlink;
  e.stat.target = "/t" + kCafe;
  Message listing = through_wire(make_message(1, msg::kEntries, to_payload(std::vector<DirEntry>{e})));
  auto entries = parse_entries(listing.payload);
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].name, kCafe);
  EXPECT_EQ((*entries)[0].stat.target, "/t" + kCafe);
}

TEST(ProtoBytes, ErrorMessagesThatNamePathsKeepTheirBytes) {
  Message back = through_wire(make_error_message(3, "ENOENT", "open /" + kCafe + ": no such file"));
  EXPECT_TRUE(back.payload["message"].is_binary());
  auto e = parse_error(back.payload);
  EXPECT_EQ(e.code, "ENOENT");
  EXPECT_EQ(e.message, "open /" + kCafe + ": no such file");
  // UTF-8 text stays a text string.
  EXPECT_TRUE(through_wire(make_error_message(3, "x", "plain")).payload["message"].is_string());
}

TEST(ProtoBytes, WronglyTypedErrorFieldsGiveTheFallback) {
  for (const Json& bad : {Json(7), Json(-1), Json(true), Json(nullptr), Json::array({1}), Json::object(),
                          Json(1.5), Json(std::string(kMaxErrorText + 1, 'x'))}) {
    Json p = {{"code", bad}, {"message", bad}};
    ErrorInfo e;
    ASSERT_NO_THROW(e = parse_error(p)) << bad.dump();
    EXPECT_EQ(e.code, "error");
    EXPECT_EQ(e.message, "unknown error");
  }
  EXPECT_EQ(parse_error(Json(7), "c", "m").message, "m");  // not even a map
}

// What the agent decodes from the host: every field of every request with a
// value of each wrong type is an error value, never an exception.
Json true_request() {
  ExecRequest r;
  r.argv = {"true"};
  return to_payload(r);
}

TEST(ProtoBytes, RequestsWithWronglyTypedFieldsAreErrors) {
  const Json wrong[] = {Json(7), Json(-7), Json(1.5), Json(true), Json(nullptr), Json("s"),
                        bytes_value("b"), Json::array({1, "x"}), Json::object({{"k", 1}})};
  const char* exec_fields[] = {"argv", "env", "cwd", "user", "tty", "rows", "cols", "stdin", "timeout_ms", "rlimits"};
  for (const char* field : exec_fields) {
    for (const Json& bad : wrong) {
      Json p = true_request();
      p[field] = bad;
      ASSERT_NO_THROW((void)parse_exec_request(p)) << field << " = " << dump_lossy(bad);
    }
  }
  Json rl = true_request();
  rl["rlimits"] = Json{{"nofile", Json::array({"a", 1})}};
  EXPECT_FALSE(parse_exec_request(rl).ok());
  const char* file_fields[] = {"path", "to", "name", "mode", "uid", "gid", "follow", "parents",
                               "recursive", "append", "exclusive", "offset", "length"};
  for (std::string_view type : {msg::kStat, msg::kRename, msg::kWrite, msg::kChown, msg::kTarOut, msg::kRead}) {
    for (const char* field : file_fields) {
      for (const Json& bad : wrong) {
        Json p = {{"path", "/x"}, {"to", "/y"}, {"uid", 1}, {"mode", 0644}};
        p[field] = bad;
        ASSERT_NO_THROW((void)parse_file_request(type, p)) << type << " " << field << " = " << dump_lossy(bad);
      }
    }
  }
  for (const Json& bad : wrong) {
    ASSERT_NO_THROW((void)parse_exit_status(Json{{"code", bad}, {"signal", bad}, {"timed_out", bad}}));
    ASSERT_NO_THROW((void)parse_entries(Json{{"entries", Json::array({bad})}}));
    ASSERT_NO_THROW((void)parse_file_stat(bad));
    ASSERT_NO_THROW((void)parse_file_result(Json{{"bytes", bad}, {"entries", bad}}));
  }
}

TEST(ExecLog, StartLineKeepsArgvBytesAndNeverThrows) {
  ExecRequest r;
  r.argv = {"echo", kCafe};
  std::string line = exec_log_start(1700000000, 4, to_payload(r));
  EXPECT_EQ(line, "{\"argv\":[\"echo\",{\"hex\":\"636166e9\"}],\"event\":\"exec\",\"stream\":4,\"time\":1700000000}");
  auto e = parse_exec_log_line(line);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->event, "exec");
  EXPECT_EQ(e->stream, 4u);
  EXPECT_EQ(e->time, 1700000000);
  EXPECT_EQ(e->argv, r.argv);
  // Text-string argv with invalid UTF-8 (an older client) is logged too.
  std::string old = exec_log_start(1, 1, Json{{"argv", {kCafe}}});
  EXPECT_EQ(parse_exec_log_line(old)->argv, std::vector<std::string>{kCafe});
  // A wrongly typed argv logs none.
  EXPECT_EQ(exec_log_start(1, 1, Json{{"argv", 7}}), "{\"event\":\"exec\",\"stream\":1,\"time\":1}");
}

TEST(ExecLog, StartLineIsBounded) {
  Json p = {{"argv", Json::array()}};
  for (int i = 0; i < 100; ++i) p["argv"].push_back(std::string(4096, 'a'));
  std::string line = exec_log_start(1, 1, p);
  EXPECT_LT(line.size(), kMaxLoggedArgvBytes + 4096);
  auto e = parse_exec_log_line(line);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->argv_truncated);
  EXPECT_EQ(e->argv.size(), kMaxLoggedArgvBytes / 4096);
}

TEST(ExecLog, EndLinesFromHostileErrorsNeverThrow) {
  // An integer, a map, a non-UTF-8 text string: the message is logged as
  // what it can be.
  Message m = make_message(2, msg::kError, Json{{"code", 1}, {"message", 7}}, kFlagEndStream);
  auto line = exec_log_end(5, 2, m);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(*line, "{\"event\":\"error\",\"message\":\"\",\"stream\":2,\"time\":5}");
  m.payload = Json{{"message", "bad " + kCafe}};
  line = exec_log_end(5, 2, m);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(parse_exec_log_line(*line)->message, "bad " + kCafe);
  m.payload = Json{{"message", Json::object({{"a", 1}})}};
  EXPECT_TRUE(exec_log_end(5, 2, m).has_value());
}

TEST(ExecLog, ExitLinesAndOtherMessages) {
  auto line = exec_log_end(5, 2, make_message(2, msg::kExit, to_payload(ExitStatus{3, 0, true}), kFlagEndStream));
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(*line, "{\"code\":3,\"event\":\"exit\",\"signal\":0,\"stream\":2,\"time\":5,\"timed_out\":true}");
  // A wrongly typed exit status is logged without its numbers.
  line = exec_log_end(5, 2, make_message(2, msg::kExit, Json{{"code", "x"}}, kFlagEndStream));
  EXPECT_EQ(*line, "{\"event\":\"exit\",\"stream\":2,\"time\":5}");
  EXPECT_FALSE(exec_log_end(5, 2, make_message(2, msg::kStdout)).has_value());
}

TEST(ExecLog, ReadingAcceptsAnyLine) {
  EXPECT_FALSE(parse_exec_log_line("not json").has_value());
  EXPECT_FALSE(parse_exec_log_line("[1]").has_value());
  auto e = parse_exec_log_line(
      "{\"time\":\"x\",\"stream\":-1,\"event\":7,\"argv\":[1,{\"hex\":\"q\"},\"ok\"],\"code\":1e9,\"message\":[]}");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->time, 0);
  EXPECT_EQ(e->stream, 0u);
  EXPECT_EQ(e->event, "");
  EXPECT_EQ(e->argv, std::vector<std::string>{"ok"});
  EXPECT_EQ(e->code, 0);
  EXPECT_EQ(e->message, "");
}

}  // namespace
}  // namespace moat::proto
