// The E2B front end's pieces that need no sandbox: Connect framing and
// errors, the multipart reader, guest accounts, EntryInfo text, the
// template map, the sandbox table's expiry and process events.
#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "server/e2b/binary_codec.h"
#include "server/e2b/connect_protocol.h"
#include "server/e2b/envd/process.pb.h"
#include "server/e2b/entry_info.h"
#include "server/e2b/guest_users.h"
#include "server/e2b/multipart_reader.h"
#include "server/e2b/process_table.h"
#include "server/e2b/sandbox_records.h"
#include "server/e2b/sandbox_table.h"
#include "server/e2b/templates.h"

namespace moat::server::e2b {
namespace {

using Json = nlohmann::json;

TEST(E2bConnect, EnvelopeRoundTripAndEndOfStream) {
  std::string e = envelope("{\"a\":1}");
  ASSERT_EQ(e.size(), 5u + 7u);
  EXPECT_EQ(e.substr(0, 5), std::string("\0\0\0\0\x07", 5));
  auto one = single_message(e);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(*one, "{\"a\":1}");

  std::string end = end_stream();
  EXPECT_EQ(end, std::string("\x02\0\0\0\x02{}", 7));
  std::string err = end_stream(ConnectError{ConnectCode::kNotFound, "no such process"});
  ASSERT_EQ(static_cast<unsigned char>(err[0]), kEnvelopeEndStream);
  EXPECT_EQ(Json::parse(err.substr(5)), Json::parse(R"({"error":{"code":"not_found","message":"no such process"}})"));
}

TEST(E2bConnect, RequestEnvelopesAreCheckedAgainstTheBody) {
  EXPECT_EQ(single_message("").error().code, EINVAL);
  EXPECT_EQ(single_message(std::string("\0\0\0", 3)).error().code, EINVAL);
  EXPECT_EQ(single_message(std::string("\0\0\0\0\x05{}", 7)).error().code, EINVAL);        // says more than follows
  EXPECT_EQ(single_message(std::string("\0\0\0\0\x01{}", 7)).error().code, EINVAL);        // trailing bytes
  EXPECT_EQ(single_message(std::string("\x01\0\0\0\x02{}", 7)).error().code, EINVAL);      // compressed
  EXPECT_EQ(single_message(std::string("\x02\0\0\0\x02{}", 7)).error().code, EINVAL);      // end-stream in a request
  EXPECT_EQ(single_message(std::string("\0\xff\xff\xff\xff", 5)).error().code, EINVAL);  // 4 GiB claimed
  auto empty = single_message(std::string("\0\0\0\0\0", 5));
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
}

TEST(E2bConnect, CallKindComesFromTheContentType) {
  Request r;
  r.headers["content-type"] = "application/json; charset=utf-8";
  EXPECT_EQ(*call_kind_of(r), CallKind::kUnary);
  r.headers["content-type"] = "Application/Connect+JSON";
  EXPECT_EQ(*call_kind_of(r), CallKind::kStreaming);
  EXPECT_FALSE(binary_codec_of(r));
  r.headers["content-type"] = "application/proto";
  EXPECT_EQ(*call_kind_of(r), CallKind::kUnary);
  EXPECT_TRUE(binary_codec_of(r));
  r.headers["content-type"] = "application/connect+proto";
  EXPECT_EQ(*call_kind_of(r), CallKind::kStreaming);
  EXPECT_TRUE(binary_codec_of(r));
  r.headers["content-type"] = "application/grpc";
  EXPECT_EQ(call_kind_of(r).error().code, ENOTSUP);
  r.headers["content-type"] = "application/json";
  r.headers["content-encoding"] = "gzip";
  EXPECT_EQ(call_kind_of(r).error().code, ENOTSUP);
}

TEST(E2bConnect, ErrorsMapToTheCodesTheSdkTypes) {
  EXPECT_EQ(connect_code_of(Error{ENOENT, "x"}), ConnectCode::kNotFound);
  EXPECT_EQ(connect_code_of(Error{EEXIST, "x"}), ConnectCode::kAlreadyExists);
  EXPECT_EQ(connect_code_of(Error{ENOTCONN, "x"}), ConnectCode::kUnavailable);
  EXPECT_EQ(connect_code_of(Error{EACCES, "x"}), ConnectCode::kPermissionDenied);
  EXPECT_EQ(connect_code_of(Error{0, "x"}), ConnectCode::kUnknown);
  EXPECT_EQ(http_status_of(ConnectCode::kNotFound), 404);
  EXPECT_EQ(http_status_of(ConnectCode::kUnauthenticated), 401);
  EXPECT_EQ(http_status_of(ConnectCode::kUnavailable), 503);
  Response r = unary_error({ConnectCode::kInvalidArgument, "bad"});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Json::parse(r.body), Json::parse(R"({"code":"invalid_argument","message":"bad"})"));
  Response s = streaming_error({ConnectCode::kInternal, "boom"});
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.content_type, "application/connect+json");
}

// A source that hands out `text` `step` bytes at a time.
MultipartReader::Source source_of(const std::string& text, std::size_t step) {
  auto pos = std::make_shared<std::size_t>(0);
  return [text, step, pos](char* out, std::size_t max) -> Result<std::size_t> {
    std::size_t n = std::min({step, max, text.size() - *pos});
    std::memcpy(out, text.data() + *pos, n);
    *pos += n;
    return n;
  };
}

Result<std::vector<std::pair<MultipartReader::PartHead, std::string>>> read_all(const std::string& body,
                                                                               std::size_t step) {
  MultipartReader r(source_of(body, step), "XyZ");
  std::vector<std::pair<MultipartReader::PartHead, std::string>> out;
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(auto head, r.next_part());
    if (!head) return out;
    std::string data;
    char buf[7];
    for (;;) {
      MOAT_ASSIGN_OR_RETURN(std::size_t n, r.read_body(buf, sizeof buf));
      if (n == 0) break;
      data.append(buf, n);
    }
    out.emplace_back(*head, data);
  }
}

TEST(E2bMultipart, PartsAndBodiesAtEveryReadSize) {
  std::string body =
      "preamble\r\n--XyZ\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=\"/home/user/a%22b.txt\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n"
      "line one\r\n--XyYnot a delimiter\r\n--Xy\r\n"
      "--XyZ  \r\n"
      "Content-Disposition: form-data; name=file; filename=b.bin\r\n\r\n"
      "\r\n--XyZ--\r\nepilogue";
  for (std::size_t step : {1u, 2u, 3u, 5u, 64u, 4096u}) {
    auto parts = read_all(body, step);
    ASSERT_TRUE(parts) << step << ": " << parts.error().message;
    ASSERT_EQ(parts->size(), 2u) << step;
    EXPECT_EQ((*parts)[0].first.name, "file");
    EXPECT_EQ((*parts)[0].first.filename.value_or("-"), "/home/user/a\"b.txt");
    EXPECT_EQ((*parts)[0].first.content_type, "application/octet-stream");
    EXPECT_EQ((*parts)[0].second, "line one\r\n--XyYnot a delimiter\r\n--Xy");
    EXPECT_EQ((*parts)[1].first.filename.value_or("-"), "b.bin");
    EXPECT_EQ((*parts)[1].second, "");
  }
}

TEST(E2bMultipart, ABodyCutShortOrMalformedIsAnError) {
  std::string head = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n";
  EXPECT_EQ(read_all(head + "partial data", 3).error().code, EINVAL);
  EXPECT_EQ(read_all("no delimiter at all", 4).error().code, EINVAL);
  EXPECT_EQ(read_all("--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--", 4).error().code, EINVAL);
  EXPECT_EQ(read_all("--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", 4).error().code, EINVAL);
  EXPECT_EQ(read_all("--XyZ\r\n" + std::string(20000, 'h'), 4096).error().code, EINVAL);
  auto none = read_all("--XyZ--\r\n", 2);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(E2bMultipart, BoundaryFromTheContentType) {
  EXPECT_EQ(*MultipartReader::boundary_of("multipart/form-data; boundary=----abc"), "----abc");
  EXPECT_EQ(*MultipartReader::boundary_of("Multipart/Form-Data; charset=x; boundary=\"q t\""), "q t");
  EXPECT_EQ(MultipartReader::boundary_of("multipart/form-data").error().code, EINVAL);
  EXPECT_EQ(MultipartReader::boundary_of("text/plain; boundary=x").error().code, EINVAL);
  EXPECT_EQ(MultipartReader::boundary_of("multipart/form-data; boundary=" + std::string(71, 'b')).error().code,
            EINVAL);
}

TEST(E2bGuestUsers, ParsesAccountsAndSkipsBadLines) {
  auto u = GuestUsers::parse(
      "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\nuser:x:1000:1000::/home/user:/bin/bash\n"
      "nohome:x:1001:1001::relative:/bin/sh\nbad:x:notanumber:1:::\n",
      "root:x:0:\nuser:x:1000:\n");
  auto user = u.by_name("user");
  ASSERT_TRUE(user);
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->home, "/home/user");
  EXPECT_EQ(u.by_name("nohome")->home, "/");
  EXPECT_FALSE(u.by_name("bad"));
  EXPECT_FALSE(u.by_name("nobody"));
  EXPECT_EQ(u.user_name(1000), "user");
  EXPECT_EQ(u.user_name(4242), "4242");
  EXPECT_EQ(u.group_name(1000), "user");
  // root is there without any /etc/passwd.
  auto empty = GuestUsers::parse("", "");
  EXPECT_EQ(empty.by_name("root")->home, "/root");
}

TEST(E2bGuestUsers, RelativePathsAreUnderHome) {
  EXPECT_EQ(resolve_guest_path("/etc/x", "/home/user"), "/etc/x");
  EXPECT_EQ(resolve_guest_path("a/b", "/home/user"), "/home/user/a/b");
  EXPECT_EQ(resolve_guest_path("~/a", "/home/user"), "/home/user/a");
  EXPECT_EQ(resolve_guest_path("~", "/home/user"), "/home/user");
  EXPECT_EQ(resolve_guest_path("", "/"), "/");
  EXPECT_EQ(resolve_guest_path("x", "/"), "/x");
}

TEST(E2bEntryInfo, TextAsEnvdWritesIt) {
  EXPECT_EQ(permissions_text(FileType::kFile, 0644), "-rw-r--r--");
  EXPECT_EQ(permissions_text(FileType::kDir, 0755), "drwxr-xr-x");
  EXPECT_EQ(permissions_text(FileType::kSymlink, 0777), "Lrwxrwxrwx");
  EXPECT_EQ(permissions_text(FileType::kFile, 04755), "urwxr-xr-x");
  EXPECT_EQ(timestamp_text(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(timestamp_text(1747699200123456789), "2025-05-20T00:00:00.123456789Z");
  EXPECT_EQ(base_name("/home/user/a.txt"), "a.txt");
  EXPECT_EQ(base_name("/home/user/"), "user");
  EXPECT_EQ(base_name("/"), "/");
  FileInfo fi;
  fi.type = FileType::kFile;
  fi.mode = 0600;
  fi.uid = 1000;
  fi.gid = 1000;
  fi.size = 5;
  auto users = GuestUsers::parse("user:x:1000:1000::/home/user:/bin/sh\n", "user:x:1000:\n");
  Json j = entry_info_json("/home/user/f", fi, users);
  EXPECT_EQ(j["name"], "f");
  EXPECT_EQ(j["type"], "FILE_TYPE_FILE");
  EXPECT_EQ(j["size"], "5");
  EXPECT_EQ(j["owner"], "user");
  EXPECT_EQ(j["permissions"], "-rw-------");
  EXPECT_FALSE(j.contains("symlinkTarget"));
}

TEST(E2bTemplates, MapIsCheckedAndNamedInErrors) {
  auto m = TemplateMap::parse(R"({"templates": {"base": {"image": "r/x:1", "user": "user", "cpus": 2}}})", "t.json");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->find("base")->cpus, 2);
  EXPECT_EQ(m->find("base")->memory_mib, 512);
  auto missing = m->find("other");
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("t.json"), std::string::npos);
  EXPECT_FALSE(TemplateMap::parse(R"({"templates": {"b": {"user": "u"}}})", "t"));            // no image
  EXPECT_FALSE(TemplateMap::parse(R"({"templates": {"b": {"image": "x", "cpus": 0}}})", "t"));  // bad cpus
  EXPECT_FALSE(TemplateMap::parse(R"({"templates": {"b": {"image": "x", "gpu": 1}}})", "t"));   // unknown field
  EXPECT_FALSE(TemplateMap::parse(R"({"base": {}})", "t"));
  EXPECT_NE(TemplateMap{}.find("base").error().message.find("--e2b-templates"), std::string::npos);
}

TEST(E2bSandboxTable, ExpiredSandboxesAreTakenOut) {
  SandboxTable t;
  auto now = Clock::now();
  E2bSandbox a, b;
  a.id = "a";
  b.id = "b";
  a.end_at = now - std::chrono::seconds(1);
  b.end_at = now + std::chrono::hours(1);
  ASSERT_TRUE(t.add(a));
  ASSERT_TRUE(t.add(b));
  EXPECT_EQ(t.take_expired(now), std::vector<std::string>{"a"});
  EXPECT_FALSE(t.find("a"));
  EXPECT_TRUE(t.set_end("b", now));
  EXPECT_EQ(t.take_expired(now), std::vector<std::string>{"b"});
  EXPECT_FALSE(t.set_end("b", now));
  EXPECT_TRUE(t.list().empty());
}

TEST(E2bProcessEvents, AsEnvdSendsThem) {
  EXPECT_EQ(Json::parse(start_event_json(42)), Json::parse(R"({"event":{"start":{"pid":42}}})"));
  EXPECT_EQ(Json::parse(data_event_json("stdout", "hi\n")), Json::parse(R"({"event":{"data":{"stdout":"aGkK"}}})"));
  EXPECT_EQ(Json::parse(end_event_json(ExitStatus{3, 0, false})),
            Json::parse(R"({"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3"}}})"));
  EXPECT_EQ(Json::parse(end_event_json(ExitStatus{0, SIGKILL, false})),
            Json::parse(R"({"event":{"end":{"exitCode":-1,"exited":false,"status":"signal: killed"}}})"));
}

TEST(E2bEventQueue, AFullQueueHoldsThePublisherUntilRead) {
  EventQueue q;
  std::string big(EventQueue::kMaxQueuedBytes, 'x');
  q.push({big, false, std::nullopt});
  std::atomic<bool> pushed{false};
  std::thread t([&] {
    q.push({"{}", true, std::nullopt});
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pushed);
  auto first = q.pop(std::chrono::seconds(1));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->json.size(), big.size());
  t.join();
  auto second = q.pop(std::chrono::seconds(1));
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->last);
  EXPECT_FALSE(q.pop(std::chrono::milliseconds(1)));
  // A closed queue drops what comes and never holds the publisher.
  q.push({big, false, std::nullopt});
  q.close();
  q.push({big, false, std::nullopt});
  EXPECT_FALSE(q.pop(std::chrono::milliseconds(1)));
}

}  // namespace
}  // namespace moat::server::e2b

namespace moat::server::e2b {
namespace {

TEST(E2bSandboxRecords, RoundTripAndRefusals) {
  E2bSandbox s;
  s.id = "abc123";
  s.template_id = "base";
  s.access_token = std::string(48, 'f');
  s.user = "user";
  s.metadata = {{"k", "v"}};
  s.env_vars = {{"A", "1"}};
  s.started_at = Clock::time_point(std::chrono::seconds(1700000000));
  s.end_at = s.started_at + std::chrono::seconds(300);
  s.cpus = 2;
  s.memory_mib = 1024;
  auto back = record_from_json(record_json(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, s.id);
  EXPECT_EQ(back->access_token, s.access_token);
  EXPECT_EQ(back->metadata, s.metadata);
  EXPECT_EQ(back->env_vars, s.env_vars);
  EXPECT_EQ(back->end_at, s.end_at);
  EXPECT_EQ(back->cpus, 2);
  Json j = Json::parse(record_json(s));
  for (const char* field : {"id", "access_token", "end_at_ns", "cpus"}) {
    Json bad = j;
    bad.erase(field);
    EXPECT_FALSE(record_from_json(bad.dump())) << field;
  }
  Json traversal = j;
  traversal["id"] = "../../etc";
  EXPECT_FALSE(record_from_json(traversal.dump()));
  Json short_token = j;
  short_token["access_token"] = "x";
  EXPECT_FALSE(record_from_json(short_token.dump()));
  EXPECT_FALSE(plain_id(""));
  EXPECT_FALSE(plain_id("A1"));
  EXPECT_TRUE(plain_id("9c80f1fd0206"));
}

TEST(E2bSandboxRecords, TheTableKeepsItsRecordsInStep) {
  char tmpl[] = "/tmp/moat-e2b-records-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = std::string(tmpl) + "/records";
  auto records = SandboxRecords::open(dir);
  ASSERT_TRUE(records) << records.error().message;
  SandboxTable t;
  t.persist_to(*records);
  E2bSandbox a;
  a.id = "aaa";
  a.template_id = "base";
  a.access_token = std::string(48, 'a');
  a.user = "root";
  a.end_at = Clock::now() + std::chrono::hours(1);
  ASSERT_TRUE(t.add(a));
  auto now_end = Clock::now() + std::chrono::hours(2);
  ASSERT_TRUE(t.set_end("aaa", now_end));
  std::vector<std::string> problems;
  auto loaded = records->load(problems);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].end_at, now_end);
  // A file that is not a record is named, not taken.
  std::FILE* f = std::fopen((dir + "/bbb.json").c_str(), "w");
  std::fputs("{not json", f);
  std::fclose(f);
  loaded = records->load(problems);
  EXPECT_EQ(loaded.size(), 1u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("bbb.json"), std::string::npos);
  t.erase("aaa");
  problems.clear();
  EXPECT_TRUE(records->load(problems).empty());
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace moat::server::e2b

namespace moat::server::e2b {
namespace {

TEST(E2bBinaryCodec, TranslatesEnvdMessagesBothWays) {
  EXPECT_FALSE(BinaryCodec::for_path("/process.Process/Nope"));
  EXPECT_FALSE(BinaryCodec::for_path("/nope.Nope/Start"));
  EXPECT_FALSE(BinaryCodec::for_path("process.Process.Start"));
  EXPECT_FALSE(BinaryCodec::for_path("/process.Process/Start/x"));
  auto start = BinaryCodec::for_path("/process.Process/Start");
  ASSERT_TRUE(start);

  process::StartRequest req;
  req.mutable_process()->set_cmd("/bin/bash");
  req.mutable_process()->add_args("-c");
  (*req.mutable_process()->mutable_envs())["A"] = "1";
  req.set_tag("t");
  req.set_stdin(false);  // proto3 optional: present though false
  auto json = start->request_json(req.SerializeAsString());
  ASSERT_TRUE(json) << json.error().message;
  EXPECT_EQ(Json::parse(*json),
            Json::parse(R"({"process":{"cmd":"/bin/bash","args":["-c"],"envs":{"A":"1"}},"tag":"t","stdin":false})"));
  EXPECT_EQ(start->request_json("\xff\xff\xff").error().code, EINVAL);

  auto bytes = start->response_bytes(R"({"event":{"data":{"stdout":"aGkK"}}})");
  ASSERT_TRUE(bytes) << bytes.error().message;
  process::StartResponse res;
  ASSERT_TRUE(res.ParseFromString(*bytes));
  EXPECT_EQ(res.event().data().stdout(), "hi\n");
  auto end = start->response_bytes(end_event_json(ExitStatus{0, SIGKILL, false}));
  ASSERT_TRUE(end) << end.error().message;
  ASSERT_TRUE(res.ParseFromString(*end));
  EXPECT_EQ(res.event().end().exit_code(), -1);
  EXPECT_EQ(res.event().end().status(), "signal: killed");
  EXPECT_FALSE(start->response_bytes(R"({"event":{"data":{"stdout":"not base64!"}}})"));

  // The EntryInfo the filesystem handlers write is exactly the message.
  auto stat = BinaryCodec::for_path("/filesystem.Filesystem/Stat");
  ASSERT_TRUE(stat);
  FileInfo fi;
  fi.size = 12;
  fi.mode = 0644;
  fi.mtime_ns = 1747699200123456789;
  auto users = GuestUsers::parse("", "");
  EXPECT_TRUE(stat->response_bytes(Json{{"entry", entry_info_json("/a/b", fi, users)}}.dump()));
}

}  // namespace
}  // namespace moat::server::e2b
