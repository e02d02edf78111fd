// A pull killed (SIGKILL) in the middle of a large blob, twice, then
// completed: fault_registry.py's slow/ mode trickles a 24 MiB layer so the
// kills land at arbitrary offsets (not at a boundary the server picks, as
// FaultPull.KilledPullLeavesNothingVisibleAndALaterPullResumes does). While
// the download runs and after each kill, no blob, root or ref may be
// visible; each later pull must resume with Range from exactly the bytes
// the killed one left, and the last one must produce the right blob and a
// valid root.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "image/fixture_harness.h"

namespace moat::image::testing {
namespace {

constexpr int kLayerMib = 24;

class KilledPull : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = scratch_.path();
    auto made = run({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/make_large_oci.py", dir + "/layout",
                     "1", std::to_string(kLayerMib)},
                    {}, dir);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::istringstream lines(made.out);
    lines >> manifest_ >> layer_;
    ASSERT_EQ(layer_.size(), 71u) << made.out;
    layer_size_ = std::filesystem::file_size(dir + "/layout/blobs/sha256/" + layer_.substr(7));
    port_ = free_port();
    ASSERT_TRUE(server_.start({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/fault_registry.py", "--port",
                               std::to_string(port_), "--layout", dir + "/layout", "--tag", "1"},
                              dir + "/server.log"));
    ASSERT_TRUE(wait_for_port(port_, std::chrono::seconds(20))) << slurp(dir + "/server.log");
    std::filesystem::create_directories(dir + "/docker");
    cli_ = image_cli(dir);
  }

  std::string home() const { return scratch_ / "home"; }
  std::string ref(const std::string& mode) const {
    return "127.0.0.1:" + std::to_string(port_) + "/" + mode + "/large:1";
  }
  std::vector<std::string> env() const {
    return {"MOAT_HOME=" + home(), "DOCKER_CONFIG=" + scratch_ / "docker"};
  }
  std::string partial() const { return home() + "/blobs/incoming/" + layer_.substr(7) + ".partial"; }

  // Range headers of the layer GETs the server has seen, in order.
  std::vector<std::string> layer_ranges() {
    auto r = run({"python3", "-c",
                  "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:" +
                      std::to_string(port_) + "/_requests').read().decode())"},
                 {}, scratch_.path());
    std::vector<std::string> out;
    auto all = nlohmann::json::parse(r.out, nullptr, false);
    if (all.is_discarded()) return {"<bad /_requests answer>"};
    for (const auto& q : all) {
      if (q["path"].get<std::string>().find("/blobs/" + layer_) != std::string::npos) {
        out.push_back(q["range"]);
      }
    }
    return out;
  }

  void expect_nothing_visible() {
    for (const auto& b : list_dir(home() + "/blobs/sha256")) ASSERT_NE("sha256:" + b, layer_);
    ASSERT_EQ(list_dir(home() + "/images"), std::vector<std::string>{});
  }

  // Starts a slow pull, watches it until the partial blob holds at least
  // `fraction` of the layer (checking that nothing becomes visible
  // meanwhile), kills it with SIGKILL and returns the partial's size.
  std::uintmax_t pull_and_kill(double fraction) {
    Background p;
    EXPECT_TRUE(p.start({cli_, "image", "pull", "--insecure", ref("slow")}, scratch_ / "pull.log", env()));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::error_code ec;
    auto want = static_cast<std::uintmax_t>(fraction * static_cast<double>(layer_size_));
    std::uintmax_t size = 0;
    int polls = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      size = std::filesystem::file_size(partial(), ec);
      if (!ec && size >= want) break;
      expect_nothing_visible();
      ++polls;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    p.kill_hard();
    EXPECT_GE(size, want) << slurp(scratch_ / "pull.log");
    EXPECT_GT(polls, 3);  // the download was observed in progress, not only at the end
    size = std::filesystem::file_size(partial(), ec);
    EXPECT_LT(size, layer_size_);
    expect_nothing_visible();
    auto ls = run({cli_, "image", "ls"}, env(), scratch_.path());
    EXPECT_EQ(ls.out.find("large"), std::string::npos) << ls.out;
    return size;
  }

  TempDir scratch_;
  Background server_;
  int port_ = 0;
  std::string manifest_, layer_, cli_;
  std::uintmax_t layer_size_ = 0;
};

TEST_F(KilledPull, TwoKillsMidBlobThenTheThirdPullResumesAndCompletes) {
  std::uintmax_t first = pull_and_kill(0.25);
  std::uintmax_t second = pull_and_kill(0.6);
  EXPECT_GT(second, first);

  auto r = run({cli_, "image", "pull", "--insecure", ref("plain")}, env(), scratch_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, manifest_ + "\n");
  // First GET from zero, then each pull resumes where the previous one died.
  EXPECT_EQ(layer_ranges(), (std::vector<std::string>{"", "bytes=" + std::to_string(first) + "-",
                                                       "bytes=" + std::to_string(second) + "-"}));
  EXPECT_EQ(read_file(home() + "/blobs/sha256/" + layer_.substr(7)),
            read_file(scratch_ / "layout/blobs/sha256/" + layer_.substr(7)));
  EXPECT_EQ(list_dir(home() + "/blobs/incoming"), std::vector<std::string>{});
  EXPECT_EQ(unverified_blobs(home()), std::vector<std::string>{});
  EXPECT_EQ(fsck_erofs(home() + "/images/" + manifest_.substr(7) + ".erofs"), "");
}

}  // namespace
}  // namespace moat::image::testing
