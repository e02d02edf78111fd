// The server's pieces that need no socket: routing, query and path
// decoding, the bearer token, idempotency keys, the metrics text.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "server/bearer_token.h"
#include "server/idempotency_cache.h"
#include "server/metrics_text.h"
#include "server/route_support.h"
#include "server/router.h"

namespace moat::server {
namespace {

Response ok_with(std::string body) {
  Response r;
  r.body = std::move(body);
  return r;
}

TEST(ServerRouter, MatchesParamsAndTheRestOfThePath) {
  Router r;
  r.add({"GET", "/v1/sandboxes/{id}", Route::Body::kNone, false, [](Request&) { return ok_with("one"); }});
  r.add({"GET", "/v1/sandboxes/{id}/files/{path*}", Route::Body::kNone, false, [](Request&) { return ok_with("f"); }});
  std::map<std::string, std::string> params;
  bool known = false;
  const Route* m = r.match("GET", "/v1/sandboxes/abc", params, known);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(params.at("id"), "abc");
  m = r.match("GET", "/v1/sandboxes/abc/files/etc/os release", params, known);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(params.at("path"), "/etc/os release");
  m = r.match("GET", "/v1/sandboxes/abc/files/", params, known);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(params.at("path"), "/");
  EXPECT_EQ(r.match("DELETE", "/v1/sandboxes/abc", params, known), nullptr);
  EXPECT_TRUE(known);
  EXPECT_EQ(r.match("GET", "/v1/sandboxes", params, known), nullptr);
  EXPECT_FALSE(known);
  EXPECT_EQ(r.match("GET", "/v1/sandboxes//", params, known), nullptr);
}

TEST(ServerRouter, DecodesPercentEscapesAndQueries) {
  EXPECT_EQ(percent_decode("/a%20b%2Fc"), "/a b/c");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_FALSE(percent_decode("%2"));
  EXPECT_FALSE(percent_decode("%zz"));
  EXPECT_FALSE(percent_decode("a%00b"));
  auto q = parse_query("a=1&b=x%20y&flag&a=2");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("a"), "2");
  EXPECT_EQ(q->at("b"), "x y");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_FALSE(parse_query("a=%G0"));
}

TEST(ServerQuery, NumbersAndSecondsArePlainDecimal) {
  Request req;
  auto number = [&](const std::string& text) {
    req.query["n"] = text;
    return query_number(req, "n", 7, 1000);
  };
  EXPECT_EQ(*query_number(req, "n", 7, 1000), 7u);
  EXPECT_EQ(*number("0"), 0u);
  EXPECT_EQ(*number("1000"), 1000u);
  for (const char* bad : {"", "1001", " 5", "+5", "-1", " -1", "5 ", "0x10", "1e2", "18446744073709551616"})
    EXPECT_FALSE(number(bad)) << bad;
  req.query["n"] = "18446744073709551615";
  EXPECT_EQ(*query_number(req, "n", 0, UINT64_MAX), UINT64_MAX);
  req.query["n"] = "5";
  EXPECT_FALSE(query_number(req, "n", 0, 3));

  auto seconds = [&](const std::string& text) {
    req.query["s"] = text;
    return query_seconds(req, "s", Duration(9));
  };
  EXPECT_EQ(query_seconds(req, "x", Duration(9))->count(), 9);
  EXPECT_EQ(seconds("0")->count(), 0);
  EXPECT_EQ(seconds("2")->count(), 2000);
  EXPECT_EQ(seconds("1.5")->count(), 1500);
  EXPECT_EQ(seconds("0.0015")->count(), 2);
  EXPECT_EQ(seconds("86400")->count(), 86400000);
  for (const char* bad : {"", " 1", "-1", "+1", "1e3", "inf", "nan", "0x1", "86400.001", "99999999", "1..2", ".5"})
    EXPECT_FALSE(seconds(bad)) << bad;
}

TEST(ServerToken, IsMadePrivateReadBackAndCompared) {
  char dir[] = "/tmp/moat-token-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/token";
  auto made = load_or_create_token(path);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->size(), 64u);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = load_or_create_token(path);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *made);
  EXPECT_TRUE(token_matches(*made, *made));
  EXPECT_FALSE(token_matches(made->substr(1), *made));
  EXPECT_FALSE(token_matches("", *made));
  EXPECT_FALSE(token_matches("", ""));
  chmod(path.c_str(), 0644);
  auto open_to_all = load_or_create_token(path);
  ASSERT_FALSE(open_to_all);
  EXPECT_EQ(open_to_all.error().code, EACCES);
  chmod(path.c_str(), 0600);
  std::ofstream(path) << "short\n";
  EXPECT_FALSE(load_or_create_token(path));
  EXPECT_EQ(bearer_of("Bearer abc"), "abc");
  EXPECT_EQ(bearer_of("bearer  abc "), "abc");
  EXPECT_EQ(bearer_of("Basic abc"), "");
  unlink(path.c_str());
  rmdir(dir);
}

TEST(ServerIdempotency, OneRunPerKeyAndBody) {
  IdempotencyCache cache;
  int runs = 0;
  auto make = [&] {
    ++runs;
    Response r = ok_with("made " + std::to_string(runs));
    r.status = 201;
    return r;
  };
  EXPECT_EQ(cache.run("POST /x", "k", "{}", make).body, "made 1");
  Response replay = cache.run("POST /x", "k", "{}", make);
  EXPECT_EQ(replay.body, "made 1");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(cache.run("POST /x", "k", "{\"other\":1}", make).status, 422);
  EXPECT_EQ(cache.run("POST /y", "k", "{}", make).body, "made 2");
  EXPECT_EQ(cache.run("POST /x", "", "{}", make).body, "made 3");
  // A failure is not kept: the retry runs.
  auto fail = [&] {
    ++runs;
    Response r;
    r.status = 500;
    return r;
  };
  EXPECT_EQ(cache.run("POST /x", "f", "{}", fail).status, 500);
  EXPECT_EQ(cache.run("POST /x", "f", "{}", make).status, 201);
}

TEST(ServerMetrics, OneSeriesPerSandboxWithEscapedLabels) {
  SandboxInfo info;
  info.id = "abc";
  info.name = "we\"ird\\";
  info.state = SandboxState::kRunning;
  SandboxStats stats;
  stats.cpu_ns = 1500000000;
  stats.memory_bytes = 4096;
  ServerCounters counters;
  counters.requests = 7;
  std::string text = metrics_text({info}, {{info, stats}}, counters);
  EXPECT_NE(text.find("moat_sandbox_cpu_seconds_total{id=\"abc\",name=\"we\\\"ird\\\\\"} 1.5\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("moat_sandbox_memory_bytes{id=\"abc\",name=\"we\\\"ird\\\\\"} 4096\n"), std::string::npos);
  EXPECT_NE(text.find("moat_sandboxes{state=\"running\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moat_server_requests_total 7\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE moat_sandbox_cpu_seconds_total counter\n"), std::string::npos);
}

}  // namespace
}  // namespace moat::server
