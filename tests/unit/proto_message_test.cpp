#include <gtest/gtest.h>

#include "proto/cbor_guard.h"
#include "proto/exec.h"
#include "proto/message.h"

namespace moat::proto {
namespace {

Frame frame_of(const Message& m) {
  std::string wire = encode_message(m);
  FrameDecoder d;
  d.feed(wire);
  Frame f;
  auto r = d.next(f);
  EXPECT_TRUE(r.ok() && *r);
  return f;
}

Frame raw_frame(std::uint32_t stream, std::string body) {
  Frame f;
  f.stream = stream;
  f.body = std::move(body);
  return f;
}

TEST(ProtoMessage, RoundTripsTypeVersionPayloadAndFlags) {
  Message m = make_message(5, msg::kSignal, Json{{"sig", 15}}, kFlagEndStream);
  auto back = decode_message(frame_of(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->stream, 5u);
  EXPECT_EQ(back->flags, kFlagEndStream);
  EXPECT_EQ(back->version, kProtocolVersion);
  EXPECT_EQ(back->type, "signal");
  EXPECT_EQ(back->payload["sig"], 15);
}

TEST(ProtoMessage, DataMessagesCarryArbitraryBytes) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  auto back = decode_message(frame_of(make_data_message(3, msg::kStdout, bytes)));
  ASSERT_TRUE(back.ok());
  auto data = data_of(*back);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, bytes);
}

TEST(ProtoMessage, RejectsGarbage) {
  EXPECT_FALSE(decode_message(raw_frame(1, "")).ok());
  EXPECT_FALSE(decode_message(raw_frame(1, "\xff\xff\xff")).ok());
  // A CBOR integer, not a map.
  EXPECT_FALSE(decode_message(raw_frame(1, "\x01")).ok());
  // A map without "t".
  auto no_type = Json::to_cbor(Json{{"v", 1}});
  EXPECT_FALSE(decode_message(raw_frame(1, std::string(no_type.begin(), no_type.end()))).ok());
  // "p" that is not a map.
  auto bad_p = Json::to_cbor(Json{{"v", 1}, {"t", "x"}, {"p", 3}});
  auto r = decode_message(raw_frame(1, std::string(bad_p.begin(), bad_p.end())));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("payload"), std::string::npos);
}

TEST(ProtoMessage, RejectsDeepNestingWithoutRecursing) {
  // 500 000 nested one-element arrays would overflow a recursive parser.
  std::string body(500000, '\x81');
  body.push_back('\x00');
  auto r = decode_message(raw_frame(1, body));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too deep"), std::string::npos);
}

TEST(CborGuard, AcceptsWhatWeEncode) {
  Json j = {{"a", Json::array({1, -2, 3.5, true, nullptr, "s"})},
            {"b", Json::binary({1, 2, 3})},
            {"c", {{"d", {{"e", 1}}}}}};
  auto cbor = Json::to_cbor(j);
  EXPECT_TRUE(check_cbor_structure(std::string(cbor.begin(), cbor.end())).ok());
}

TEST(CborGuard, RejectsLiesAndLeftovers) {
  // Array claiming 2^32 items in a 5-byte body.
  EXPECT_FALSE(check_cbor_structure(std::string("\x9a\xff\xff\xff\xff", 5)).ok());
  // Byte string longer than the body.
  EXPECT_FALSE(check_cbor_structure(std::string("\x45\x01", 2)).ok());
  // Indefinite-length array.
  EXPECT_FALSE(check_cbor_structure(std::string("\x9f\xff", 2)).ok());
  // Tag.
  EXPECT_FALSE(check_cbor_structure(std::string("\xc1\x00", 2)).ok());
  // Trailing bytes.
  EXPECT_FALSE(check_cbor_structure(std::string("\x00\x00", 2)).ok());
  // Truncated header.
  EXPECT_FALSE(check_cbor_structure(std::string("\x19\x01", 2)).ok());
}

TEST(ProtoExec, RequestRoundTrip) {
  ExecRequest r;
  r.argv = {"sh", "-c", "echo hi"};
  r.env = {"A=1", "B="};
  r.cwd = "/tmp";
  r.user = "1000:1000";
  r.tty = true;
  r.rows = 40;
  r.cols = 120;
  r.stdin_open = true;
  r.timeout_ms = 1500;
  r.rlimits["nofile"] = {1024, 2048};
  auto back = parse_exec_request(to_payload(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->argv, r.argv);
  EXPECT_EQ(back->env, r.env);
  EXPECT_EQ(back->cwd, "/tmp");
  EXPECT_EQ(back->user, "1000:1000");
  EXPECT_TRUE(back->tty);
  EXPECT_EQ(back->rows, 40);
  EXPECT_EQ(back->cols, 120);
  EXPECT_TRUE(back->stdin_open);
  EXPECT_EQ(back->timeout_ms, 1500u);
  EXPECT_EQ(back->rlimits["nofile"].soft, 1024u);
  EXPECT_EQ(back->rlimits["nofile"].hard, 2048u);
  EXPECT_FALSE(back->has_capabilities);
  EXPECT_FALSE(back->no_new_privileges);

  r.has_capabilities = true;
  r.cap_bounding = 0x401;
  r.cap_effective = 0x400;
  r.cap_permitted = 0x401;
  r.cap_inheritable = 1ull << 40;
  r.cap_ambient = 0;
  r.no_new_privileges = true;
  auto caps = parse_exec_request(to_payload(r));
  ASSERT_TRUE(caps.ok()) << caps.error().message;
  EXPECT_TRUE(caps->has_capabilities);
  EXPECT_EQ(caps->cap_bounding, 0x401u);
  EXPECT_EQ(caps->cap_effective, 0x400u);
  EXPECT_EQ(caps->cap_permitted, 0x401u);
  EXPECT_EQ(caps->cap_inheritable, 1ull << 40);
  EXPECT_EQ(caps->cap_ambient, 0u);
  EXPECT_TRUE(caps->no_new_privileges);
}

TEST(ProtoExec, RequestValidation) {
  EXPECT_FALSE(parse_exec_request(Json::object()).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", Json::array()}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {1}}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {"a"}}, {"env", {"NOEQUALS"}}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {std::string("a\0b", 3)}}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {"a"}}, {"rows", -1}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {"a"}}, {"rlimits", {{"nofile", {5, 1}}}}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {"a"}}, {"caps", {1, 2, 3}}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {"a"}}, {"caps", {1, 2, 3, 4, -5}}}).ok());
  EXPECT_FALSE(parse_exec_request(Json{{"argv", {"a"}}, {"nnp", "yes"}}).ok());
  EXPECT_TRUE(parse_exec_request(Json{{"argv", {"a"}}}).ok());
}

TEST(ProtoExec, ExitStatusShellCode) {
  ExitStatus s;
  s.code = 3;
  EXPECT_EQ(s.shell_code(), 3);
  s.signal = 9;
  EXPECT_EQ(s.shell_code(), 137);
  auto back = parse_exit_status(to_payload(s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->signal, 9);
  EXPECT_FALSE(parse_exit_status(Json{{"code", 300}, {"signal", 0}}).ok());
}

}  // namespace
}  // namespace moat::proto
