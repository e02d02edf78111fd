// Payload validation of the file-operation streams.
#include <gtest/gtest.h>

#include <cerrno>

#include "proto/file_ops.h"

namespace moat::proto {
namespace {

TEST(FileOps, RequestRoundTrips) {
  FileRequest r;
  r.op = std::string(msg::kWrite);
  r.path = "/tmp/x";
  r.mode = 0750;
  r.uid = 1000;
  r.gid = 100;
  r.append = true;
  auto back = parse_file_request(msg::kWrite, to_payload(r));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->path, "/tmp/x");
  EXPECT_EQ(back->mode, 0750u);
  EXPECT_EQ(back->uid, 1000u);
  EXPECT_EQ(back->gid, 100u);
  EXPECT_TRUE(back->append);
  EXPECT_FALSE(back->exclusive);

  FileRequest mv;
  mv.op = std::string(msg::kRename);
  mv.path = "/a";
  mv.to = "/b";
  auto mv_back = parse_file_request(msg::kRename, to_payload(mv));
  ASSERT_TRUE(mv_back);
  EXPECT_EQ(mv_back->to, "/b");
}

TEST(FileOps, RejectsBadRequests) {
  auto bad = [](std::string_view type, Json p) {
    auto r = parse_file_request(type, p);
    EXPECT_FALSE(r) << p.dump();
    if (!r) {
      EXPECT_EQ(r.error().code, EINVAL) << r.error().message;
    }
  };
  bad(msg::kStat, Json{{"path", "relative/path"}});
  bad(msg::kStat, Json{{"path", ""}});
  bad(msg::kStat, Json::object());
  bad(msg::kStat, Json{{"path", std::string("/a\0b", 4)}});
  bad(msg::kStat, Json{{"path", "/" + std::string(kMaxFilePath, 'a')}});
  bad(msg::kChmod, Json{{"path", "/a"}});                      // no mode
  bad(msg::kChmod, Json{{"path", "/a"}, {"mode", 010000}});    // beyond 07777
  bad(msg::kChown, Json{{"path", "/a"}});                      // neither uid nor gid
  bad(msg::kChown, Json{{"path", "/a"}, {"uid", -1}});
  bad(msg::kChown, Json{{"path", "/a"}, {"uid", 0xffffffffu}});
  bad(msg::kRename, Json{{"path", "/a"}});                     // no destination
  bad(msg::kTarOut, Json{{"path", "/a"}, {"name", "x/y"}});
  bad(msg::kTarOut, Json{{"path", "/a"}, {"name", ".."}});
  bad(msg::kWrite, Json{{"path", "/a"}, {"append", true}, {"exclusive", true}});
  bad(msg::kWrite, Json{{"path", "/a"}, {"append", 1}});
  bad("exec", Json{{"path", "/a"}});
}

TEST(FileOps, RequestTypesOpenStreams) {
  for (auto t : {"stat", "list", "read", "write", "mkdir", "remove", "rename", "chmod", "chown", "tar_out", "tar_in"})
    EXPECT_TRUE(is_file_request(t)) << t;
  for (auto t : {"exec", "data", "end", "window", "result", "stdin", ""}) EXPECT_FALSE(is_file_request(t)) << t;
}

TEST(FileOps, StatAndEntriesValidate) {
  FileStat s;
  s.type = FileType::kSymlink;
  s.mode = 0777;
  s.size = 12;
  s.target = "/etc/passwd";
  s.mtime_ns = -5;
  auto back = parse_file_stat(to_payload(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->type, FileType::kSymlink);
  EXPECT_EQ(back->target, "/etc/passwd");
  EXPECT_EQ(back->mtime_ns, -5);

  Json p = to_payload(s);
  p["type"] = "door";
  EXPECT_FALSE(parse_file_stat(p));

  std::vector<DirEntry> list(kMaxEntriesPerBatch + 1, DirEntry{"x", FileStat{}});
  EXPECT_FALSE(parse_entries(to_payload(list)));
  list.resize(2);
  list[1].name = "../x";
  EXPECT_FALSE(parse_entries(to_payload(list)));
  list[1].name = "y";
  auto ok = parse_entries(to_payload(list));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].name, "y");
}

TEST(FileOps, DataFastPathFindsExactlyTheEncodedBytes) {
  for (std::size_t n : {0u, 1u, 23u, 24u, 255u, 256u, 65535u, 65536u}) {
    std::string bytes(n, '\0');
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(i * 7);
    std::string frame = encode_message(make_data_message(5, msg::kData, bytes));
    std::string body = frame.substr(kHeaderSize);
    auto d = data_fast_path(body);
    ASSERT_TRUE(d) << n;
    EXPECT_EQ(*d, bytes) << n;
    // Any change to the envelope sends the body down the checked path.
    for (std::size_t i : {std::size_t{0}, std::size_t{5}, body.size() - 1, body.size() - 6}) {
      std::string bad = body;
      bad[i] = static_cast<char>(bad[i] ^ 0x01);
      EXPECT_FALSE(data_fast_path(bad)) << "flip at " << i;
    }
    EXPECT_FALSE(data_fast_path(body.substr(0, body.size() - 1)));
    EXPECT_FALSE(data_fast_path(body + "x"));
  }
  std::string other = encode_message(make_data_message(5, msg::kStdin, "abc")).substr(kHeaderSize);
  EXPECT_FALSE(data_fast_path(other));
}

TEST(FileOps, ErrnoNamesRoundTrip) {
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(ENOSPC), "ENOSPC");
  EXPECT_EQ(errno_from_name("ENOSPC"), ENOSPC);
  EXPECT_EQ(errno_from_name("EACCES"), EACCES);
  EXPECT_EQ(errno_from_name("bad_request"), 0);
  EXPECT_EQ(errno_from_name("E"), 0);
}

}  // namespace
}  // namespace moat::proto
