// Pulls from fault_registry.py, a loopback registry that fails on purpose:
// 5xx then success (retry), a connection dropped mid-blob (Range resume),
// a corrupted blob (rejected, nothing kept), 403 (no retry), Bearer and
// Basic authentication, and a redirect to another origin (no
// Authorization sent there), and a pull killed mid-blob (nothing visible,
// the next pull resumes).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "image/oci/digest.h"
#include "image/registry/registry_auth.h"
#include "image/registry_harness.h"

namespace moat::image::testing {
namespace {

class FaultPull : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    const std::string dir = scratch_->path();
    auto made = run({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/make_busybox_oci.py",
                     dir + "/layout", "1"},
                    {}, dir);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    digest_ = made.out.substr(0, made.out.find('\n'));
    port_ = free_port();
    server_ = new Background();
    ASSERT_TRUE(server_->start({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/fault_registry.py",
                                "--port", std::to_string(port_), "--layout", dir + "/layout",
                                "--tag", "1"},
                               dir + "/server.log"));
    ASSERT_TRUE(wait_for_port(port_, std::chrono::seconds(20))) << slurp(dir + "/server.log");
  }
  static void TearDownTestSuite() {
    delete server_;  // stops the server
    server_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    std::filesystem::create_directories(home_.path() + "/docker");
    cli_ = image_cli(home_.path());
    mark_ = all_requests().size();
  }

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string ref(const std::string& mode) const { return host() + "/" + mode + "/busybox:1"; }

  CmdResult pull(const std::string& mode) {
    return run({cli_, "image", "pull", "--insecure", ref(mode)},
               {"MOAT_HOME=" + home_.path() + "/home", "DOCKER_CONFIG=" + home_.path() + "/docker"},
               home_.path());
  }
  void write_docker_config() {
    std::ofstream(home_.path() + "/docker/config.json")
        << R"({"auths":{")" << host() << R"(":{"auth":")" << base64_encode("user:pass") << R"("}}})";
  }

  // Everything the server saw, including its own /_requests calls.
  nlohmann::json all_requests() {
    auto r = run({"python3", "-c",
                  "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://" + host() +
                      "/_requests').read().decode())"},
                 {}, scratch_->path());
    auto all = nlohmann::json::parse(r.out, nullptr, false);
    return all.is_discarded() ? nlohmann::json::array() : all;
  }
  // Requests the server saw since this test started.
  nlohmann::json requests() {
    auto all = all_requests();
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = mark_; i < all.size(); ++i) {
      if (all[i]["path"] != "/_requests") out.push_back(all[i]);
    }
    return out;
  }
  std::vector<nlohmann::json> requests_to(const std::string& needle) {
    std::vector<nlohmann::json> out;
    for (const auto& r : requests()) {
      if (r["path"].get<std::string>().find(needle) != std::string::npos) out.push_back(r);
    }
    return out;
  }
  std::vector<std::string> blobs() const { return list_dir(home_.path() + "/home/blobs/sha256"); }
  std::vector<std::string> incoming() const { return list_dir(home_.path() + "/home/blobs/incoming"); }
  // The largest blob in the layout: the busybox layer.
  static std::string big_layer() {
    std::string best;
    std::uintmax_t size = 0;
    for (const auto& e : std::filesystem::directory_iterator(scratch_->path() + "/layout/blobs/sha256")) {
      if (e.file_size() > size) {
        size = e.file_size();
        best = "sha256:" + e.path().filename().string();
      }
    }
    return best;
  }

  static TempDir* scratch_;
  static Background* server_;
  static int port_;
  static std::string digest_;

  TempDir home_;
  std::string cli_;
  std::size_t mark_ = 0;
};

TempDir* FaultPull::scratch_ = nullptr;
Background* FaultPull::server_ = nullptr;
int FaultPull::port_ = 0;
std::string FaultPull::digest_;

TEST_F(FaultPull, PlainRegistryWorks) {
  auto r = pull("plain");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_ + "\n");
  EXPECT_EQ(blobs().size(), 4u);
}

TEST_F(FaultPull, RetriesServerErrors) {
  auto r = pull("flaky");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_ + "\n");
  // Two 500s, then the answer: three GETs for the tag and for each blob.
  EXPECT_EQ(requests_to("/flaky/busybox/manifests/1").size(), 3u);
  EXPECT_EQ(requests_to("/flaky/busybox/blobs/" + big_layer()).size(), 3u);
  EXPECT_EQ(incoming(), std::vector<std::string>{});
}

TEST_F(FaultPull, ResumesADroppedBlobWithRange) {
  auto r = pull("drop");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_ + "\n");
  auto gets = requests_to("/drop/busybox/blobs/" + big_layer());
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_EQ(gets[0]["range"], "");
  auto size = std::filesystem::file_size(scratch_->path() + "/layout/blobs/sha256/" + big_layer().substr(7));
  EXPECT_EQ(gets[1]["range"], "bytes=" + std::to_string(size / 2) + "-");
  EXPECT_EQ(read_file(home_.path() + "/home/blobs/sha256/" + big_layer().substr(7)),
            read_file(scratch_->path() + "/layout/blobs/sha256/" + big_layer().substr(7)));
  EXPECT_EQ(incoming(), std::vector<std::string>{});
}

TEST_F(FaultPull, RejectsACorruptBlobAndKeepsNothingOfIt) {
  auto r = pull("corrupt");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("digest mismatch: expected sha256:"), std::string::npos) << r.err;
  for (const auto& b : blobs()) EXPECT_NE("sha256:" + b, big_layer());
  EXPECT_EQ(incoming(), std::vector<std::string>{});
  EXPECT_EQ(list_dir(home_.path() + "/home/images"), std::vector<std::string>{});
  auto ls = run({cli_, "image", "ls"}, {"MOAT_HOME=" + home_.path() + "/home"}, home_.path());
  EXPECT_EQ(ls.out.find("corrupt"), std::string::npos) << ls.out;
}

TEST_F(FaultPull, DoesNotRetryClientErrors) {
  auto r = pull("forbidden");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find(": access denied (403) (DENIED: no blobs for you)"), std::string::npos) << r.err;
  // The config is the first blob asked for; one GET, no retries.
  EXPECT_EQ(requests_to("/forbidden/busybox/blobs/").size(), 1u);
  EXPECT_EQ(incoming(), std::vector<std::string>{});
}

TEST_F(FaultPull, BearerTokenNeedsCredentials) {
  auto r = pull("bearer");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(r.err, "moat: pull " + ref("bearer") + ": tag '1': " + host() +
                       ": token server refused anonymous access (401)\n");
  EXPECT_EQ(blobs(), std::vector<std::string>{});
}

TEST_F(FaultPull, BearerTokenFlowWithDockerConfigCredentials) {
  write_docker_config();
  auto r = pull("bearer");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_ + "\n");
  auto tokens = requests_to("/token");
  ASSERT_GE(tokens.size(), 1u);
  EXPECT_EQ(tokens[0]["auth"], "Basic " + base64_encode("user:pass"));
  EXPECT_EQ(tokens[0]["path"],
            "/token?service=fault&scope=repository%3Abearer%2Fbusybox%3Apull");
}

TEST_F(FaultPull, BasicAuthWithoutCredentialsIsAClearError) {
  auto r = pull("basic");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(r.err, "moat: pull " + ref("basic") +
                       ": tag '1': unauthorized (401) (UNAUTHORIZED: credentials needed): the "
                       "registry requires credentials and none are configured for " +
                       host() + " (docker login / ~/.docker/config.json)\n");
  write_docker_config();
  auto ok = pull("basic");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, digest_ + "\n");
}

TEST_F(FaultPull, RedirectsDoNotCarryAuthorizationToAnotherHost) {
  write_docker_config();
  auto r = pull("redirect");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, digest_ + "\n");
  auto storage = requests_to("/storage/");
  ASSERT_EQ(storage.size(), 3u);  // config and two layers
  for (const auto& s : storage) EXPECT_EQ(s["auth"], "") << s.dump();
  auto blob_gets = requests_to("/redirect/busybox/blobs/");
  ASSERT_GE(blob_gets.size(), 3u);
  EXPECT_EQ(blob_gets.back()["auth"], "Bearer good-token");
}

TEST_F(FaultPull, KilledPullLeavesNothingVisibleAndALaterPullResumes) {
  std::string layer = big_layer();
  auto half = std::filesystem::file_size(scratch_->path() + "/layout/blobs/sha256/" + layer.substr(7)) / 2;
  std::string partial = home_.path() + "/home/blobs/incoming/" + layer.substr(7) + ".partial";
  Background p;
  ASSERT_TRUE(p.start({cli_, "image", "pull", "--insecure", ref("stall")}, home_.path() + "/pull.log",
                      {"MOAT_HOME=" + home_.path() + "/home", "DOCKER_CONFIG=" + home_.path() + "/docker"}));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::error_code ec;
  while (std::filesystem::file_size(partial, ec) != half && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(std::filesystem::file_size(partial, ec), half) << slurp(home_.path() + "/pull.log");
  p.kill_hard();

  for (const auto& b : blobs()) EXPECT_NE("sha256:" + b, layer);
  EXPECT_EQ(list_dir(home_.path() + "/home/images"), std::vector<std::string>{});
  auto ls = run({cli_, "image", "ls"}, {"MOAT_HOME=" + home_.path() + "/home"}, home_.path());
  EXPECT_EQ(ls.out.find("stall"), std::string::npos) << ls.out;

  // Another process picks the partial blob up where the killed one stopped.
  auto r = pull("plain");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto gets = requests_to("/plain/busybox/blobs/" + layer);
  ASSERT_EQ(gets.size(), 1u);
  EXPECT_EQ(gets[0]["range"], "bytes=" + std::to_string(half) + "-");
  EXPECT_EQ(incoming(), std::vector<std::string>{});
  EXPECT_EQ(fsck_erofs(home_.path() + "/home/images/" + digest_.substr(7) + ".erofs"), "");
}

}  // namespace
}  // namespace moat::image::testing
