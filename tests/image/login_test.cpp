// `moat registry login | logout`: credentials checked against Debian's
// docker-registry with htpasswd (bcrypt) auth over plain HTTP, stored in
// $MOAT_HOME/auth.json (0600, Docker's "auths" shape) and used by pull
// ahead of Docker's config; the token flow against fault_registry.py.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "image/registry/registry_auth.h"
#include "image/registry_harness.h"

namespace moat::image::testing {
namespace {

// docker-registry with htpasswd auth; the bcrypt line comes from Python's
// crypt module (libxcrypt), so no extra package is needed.
class AuthRegistry {
 public:
  std::string start(const std::string& dir, const std::string& user, const std::string& password) {
    std::filesystem::create_directories(dir + "/storage");
    std::string htpasswd = dir + "/htpasswd";
    TempDir s;
    auto hash = run({"python3", "-W", "ignore", "-c",
                     "import crypt,sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], "
                     "crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                     user, password},
                    {}, s.path());
    if (hash.exit_code != 0 || hash.out.find(":$2") == std::string::npos) return "bcrypt: " + hash.err;
    std::ofstream(htpasswd) << hash.out;
    port_ = free_port();
    std::string config = dir + "/config.yml";
    std::ofstream(config) << "version: 0.1\n"
                             "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                             "storage:\n  filesystem:\n    rootdirectory: " << dir << "/storage\n"
                             "auth:\n  htpasswd:\n    realm: moat-test\n    path: " << htpasswd << "\n"
                             "http:\n  addr: 127.0.0.1:" << port_ << "\n";
    if (!proc_.start({"docker-registry", "serve", config}, dir + "/registry.log")) return "fork failed";
    if (!wait_for_port(port_, std::chrono::seconds(20))) return "no listen: " + slurp(dir + "/registry.log");
    return "";
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  Background proc_;
  int port_ = -1;
};

class RegistryLogin : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new TempDir();
    const std::string dir = scratch_->path();
    auto made = run({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/make_busybox_oci.py", dir + "/layout", "1"},
                    {}, dir);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    digest_ = made.out.substr(0, made.out.find('\n'));
    registry_ = new AuthRegistry();
    ASSERT_EQ(registry_->start(dir + "/registry", "alice", "s3cret pass"), "");
    auto push = run({"skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret pass",
                     "oci:" + dir + "/layout:1", "docker://" + registry_->host() + "/private/busybox:1"},
                    {}, dir);
    ASSERT_EQ(push.exit_code, 0) << push.err;
    fault_port_ = free_port();
    fault_ = new Background();
    ASSERT_TRUE(fault_->start({"python3", std::string(MOAT_IMAGE_TEST_DIR) + "/fault_registry.py", "--port",
                               std::to_string(fault_port_), "--layout", dir + "/layout", "--tag", "1"},
                              dir + "/fault.log"));
    ASSERT_TRUE(wait_for_port(fault_port_, std::chrono::seconds(20)));
  }
  static void TearDownTestSuite() {
    delete fault_;
    fault_ = nullptr;
    delete registry_;
    registry_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }

  void SetUp() override {
    std::filesystem::create_directories(home_.path() + "/docker");
    cli_ = image_cli(home_.path());
  }
  std::string auth_file() const { return home_.path() + "/home/auth.json"; }
  // Runs the CLI through a shell so a password can be piped in.
  CmdResult moat(const std::string& args, const std::string& stdin_text = "") {
    std::string script = stdin_text.empty() ? "\"$MOAT\" " + args
                                            : "printf '%s\\n' \"$SECRET\" | \"$MOAT\" " + args;
    return run({"sh", "-c", script},
               {"MOAT=" + cli_, "SECRET=" + stdin_text, "MOAT_HOME=" + home_.path() + "/home",
                "DOCKER_CONFIG=" + home_.path() + "/docker"},
               home_.path());
  }
  std::string host() const { return registry_->host(); }

  static TempDir* scratch_;
  static AuthRegistry* registry_;
  static Background* fault_;
  static int fault_port_;
  static std::string digest_;
  TempDir home_;
  std::string cli_;
};

TempDir* RegistryLogin::scratch_ = nullptr;
AuthRegistry* RegistryLogin::registry_ = nullptr;
Background* RegistryLogin::fault_ = nullptr;
int RegistryLogin::fault_port_ = 0;
std::string RegistryLogin::digest_;

TEST_F(RegistryLogin, WrongPasswordIsRejectedAndNothingIsStored) {
  auto r = moat("registry login --insecure --username alice --password-stdin " + host(), "wrong");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "moat: login to " + host() + " failed: the registry rejected the credentials (401)\n");
  EXPECT_NE(::access(auth_file().c_str(), F_OK), 0);
}

TEST_F(RegistryLogin, LoginStoresCredentialsThatPullUsesAndLogoutRemovesThem) {
  const std::string ref = host() + "/private/busybox:1";
  auto anon = moat("image pull -q --insecure " + ref);
  EXPECT_EQ(anon.exit_code, 125);
  EXPECT_NE(anon.err.find("401"), std::string::npos) << anon.err;

  auto r = moat("registry login --insecure --username alice --password-stdin " + host(), "s3cret pass");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Login Succeeded: " + host() + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(auth_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto j = nlohmann::json::parse(slurp(auth_file()), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j, nlohmann::json({{"auths", {{host(), {{"auth", base64_encode("alice:s3cret pass")}}}}}}));
  // registry_auth reads the same file the way it reads Docker's.
  auto creds = stored_credentials(host(), home_.path() + "/home", home_.path() + "/docker/none.json");
  ASSERT_TRUE(creds.ok() && creds->has_value());
  EXPECT_EQ((*creds)->password, "s3cret pass");

  auto p = moat("image pull -q --insecure " + ref);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(p.out, digest_ + "\n");

  auto out = moat("registry logout " + host());
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "Removed login credentials for " + host() + "\n");
  EXPECT_EQ(nlohmann::json::parse(slurp(auth_file())), nlohmann::json({{"auths", nlohmann::json::object()}}));
  auto again = moat("registry logout " + host());
  EXPECT_EQ(again.exit_code, 125);
  EXPECT_EQ(again.err, "moat: not logged in to " + host() + "\n");
  ASSERT_EQ(moat("image rm " + ref).exit_code, 0);
  EXPECT_EQ(moat("image pull -q --insecure " + ref).exit_code, 125);
}

TEST_F(RegistryLogin, StoredCredentialsComeBeforeDockerConfig) {
  std::ofstream(home_.path() + "/docker/config.json")
      << R"({"auths":{")" << host() << R"(":{"auth":")" << base64_encode("alice:wrong") << R"("}}})";
  EXPECT_EQ(moat("image pull -q --insecure " + host() + "/private/busybox:1").exit_code, 125);
  ASSERT_EQ(moat("registry login --insecure -u alice --password-stdin http://" + host() + "/", "s3cret pass").exit_code,
            0);
  auto p = moat("image pull -q --insecure " + host() + "/private/busybox:1");
  EXPECT_EQ(p.exit_code, 0) << p.err;
}

TEST_F(RegistryLogin, TokenFlowChecksTheCredentialsAtTheRealm) {
  const std::string fault = "127.0.0.1:" + std::to_string(fault_port_);
  auto bad = moat("registry login --insecure -u user --password-stdin " + fault, "nope");
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.err, "moat: login to " + fault + " failed: the registry rejected the credentials (401)\n");
  auto good = moat("registry login --insecure -u user --password-stdin " + fault, "pass");
  ASSERT_EQ(good.exit_code, 0) << good.err;
  // Without --insecure the realm would be refused; https is not served here.
  auto https = moat("registry login -u user --password-stdin " + fault, "pass");
  EXPECT_EQ(https.exit_code, 125);
}

TEST_F(RegistryLogin, BadArgumentsFailClearly) {
  auto no_user = moat("registry login --password-stdin " + host(), "x");
  EXPECT_EQ(no_user.exit_code, 125);
  EXPECT_EQ(no_user.err, "moat: login: --username is required with --password-stdin\n");
  auto no_tty = moat("registry login -u alice " + host(), "x");
  EXPECT_EQ(no_tty.exit_code, 125);
  EXPECT_EQ(no_tty.err, "moat: login: stdin is not a terminal; use --password-stdin\n");
  auto bad = moat("registry login -u alice --password-stdin not_a_registry", "x");
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.err, "moat: 'not_a_registry' is not a registry host[:port]\n");
}

}  // namespace
}  // namespace moat::image::testing
