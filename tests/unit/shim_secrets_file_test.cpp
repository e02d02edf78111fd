// shim_contract/secrets_file.h: a sandbox's secrets as libmoat writes them
// and its shim reads them back.
#include "shim_contract/secrets_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "shim_contract/sandbox_layout.h"

namespace moat::shim {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "moat-secrets-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) ? templ : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ShimSecretsFile, WrittenOwnerOnlyAndReadBack) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  SecretsFile file;
  file.stop_on_violation = true;
  StoredSecret s{"API_KEY", "moat-secret-1", "sk-REAL", {"api.example.test", "*.corp.test"}};
  s.in_query = true;
  s.plain_http = true;
  file.secrets.push_back(s);
  ASSERT_TRUE(write_secrets(dir.path(), file).ok());
  struct stat st {};
  ASSERT_EQ(::stat(secrets_path(dir.path()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto back = read_secrets(dir.path());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(back->stop_on_violation);
  ASSERT_EQ(back->secrets.size(), 1u);
  const auto& b = back->secrets[0];
  EXPECT_EQ(b.name, "API_KEY");
  EXPECT_EQ(b.placeholder, "moat-secret-1");
  EXPECT_EQ(b.value, "sk-REAL");
  EXPECT_EQ(b.hosts, s.hosts);
  EXPECT_TRUE(b.in_query);
  EXPECT_FALSE(b.in_body);
  EXPECT_TRUE(b.plain_http);

  // Written again: replaced whole, nothing else left in the directory.
  ASSERT_TRUE(write_secrets(dir.path(), SecretsFile{}).ok());
  auto empty = read_secrets(dir.path());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->secrets.empty());
  EXPECT_FALSE(empty->stop_on_violation);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(ShimSecretsFile, NoFileIsNoSecretsAndAMissingDirectoryAnError) {
  TempDir dir;
  auto none = read_secrets(dir.path());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->secrets.empty());
  auto st = write_secrets(dir.path() + "/gone", SecretsFile{});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(dir.path() + "/gone/"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace moat::shim
