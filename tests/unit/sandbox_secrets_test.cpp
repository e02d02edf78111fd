// A new sandbox's secrets (src/sandbox/secrets.h): the CLI form, the checks,
// and the placeholders.
#include "sandbox/secrets.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <set>

namespace moat::sandbox {
namespace {

TEST(SandboxSecrets, TheCliFormSplitsNameAndHosts) {
  auto s = parse_secret("API_KEY@api.example.com,*.corp.test", "v");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->name, "API_KEY");
  EXPECT_EQ(s->value, "v");
  EXPECT_EQ(s->hosts, (std::vector<std::string>{"api.example.com", "*.corp.test"}));
  for (const char* bad : {"API_KEY", "@host", "API_KEY@"}) {
    auto b = parse_secret(bad, "v");
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.error().message, std::string("bad --secret \"") + bad + "\": expected NAME@HOST[,HOST...]");
  }
  auto opts = parse_secret("K@a.test,b.test:body,query", "v");
  ASSERT_TRUE(opts.ok()) << opts.error().message;
  EXPECT_EQ(opts->hosts, (std::vector<std::string>{"a.test", "b.test"}));
  EXPECT_TRUE(opts->in_body);
  EXPECT_TRUE(opts->in_query);
  EXPECT_TRUE(parse_secret("K@a.test:http", "v")->plain_http);
  EXPECT_EQ(parse_secret("K@a.test:ftp", "v").error().message,
            "bad --secret \"K@a.test:ftp\": unknown option \"ftp\" (body, query, http)");
  EXPECT_EQ(*parse_secret_violation("block-and-stop"), SecretViolation::kBlockAndStop);
  EXPECT_EQ(parse_secret_violation("kill").error().message,
            "bad --on-secret-violation \"kill\": expected block or block-and-stop");
}

TEST(SandboxSecrets, BadSecretsSayWhatIsWrong) {
  auto error_of = [](std::vector<Secret> s) {
    auto st = validate_secrets(s);
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, EINVAL);
    return st.error().message;
  };
  EXPECT_EQ(error_of({{"1KEY", "v", {"a.test"}}}),
            "bad --secret \"1KEY\": the name must be an environment variable's ([A-Za-z_][A-Za-z0-9_]*, at most 128)");
  EXPECT_EQ(error_of({{"K", "v", {"a.test"}}, {"K", "w", {"b.test"}}}), "bad --secret K: given twice");
  EXPECT_EQ(error_of({{"K", "", {"a.test"}}}), "bad --secret K: its value is empty");
  EXPECT_EQ(error_of({{"K", "v\r\nX-Evil: 1", {"a.test"}}}), "bad --secret K: its value holds a line break or NUL");
  EXPECT_EQ(error_of({{"K", std::string(16 * 1024 + 1, 'v'), {"a.test"}}}),
            "bad --secret K: its value is larger than 16 KiB");
  EXPECT_EQ(error_of({{"K", "v", {}}}), "bad --secret K: no host");
  EXPECT_EQ(error_of({{"K", "v", {"a b"}}}),
            "bad --secret K: \"a b\" is not a host name (api.example.com) or *.suffix (*.example.com)");
  EXPECT_TRUE(validate_secrets({{"K_1", "v", {"API.example.com.", "*.corp.test"}}}).ok());
}

TEST(SandboxSecrets, EachSecretGetsAFreshPlaceholder) {
  std::vector<Secret> s = {{"A", "va", {"API.Example.com."}}, {"B", "vb", {"*.Corp.test"}}};
  auto one = prepare_secrets(s, SecretViolation::kBlockAndStop);
  auto two = prepare_secrets(s, SecretViolation::kBlock);
  ASSERT_TRUE(one.ok() && two.ok());
  ASSERT_EQ(one->env.size(), 2u);
  const auto& a = one->file.secrets[0];
  EXPECT_EQ(a.placeholder.size(), 44u);
  EXPECT_EQ(a.placeholder.rfind("moat-secret-", 0), 0u);
  EXPECT_EQ(one->env[0], "A=" + a.placeholder);
  EXPECT_EQ(a.value, "va");
  EXPECT_EQ(a.hosts, (std::vector<std::string>{"api.example.com"}));
  EXPECT_EQ(one->file.secrets[1].hosts, (std::vector<std::string>{"*.corp.test"}));
  EXPECT_TRUE(one->file.stop_on_violation);
  EXPECT_FALSE(two->file.stop_on_violation);
  std::set<std::string> all = {a.placeholder, one->file.secrets[1].placeholder, two->file.secrets[0].placeholder,
                               two->file.secrets[1].placeholder};
  EXPECT_EQ(all.size(), 4u) << "random per secret and per sandbox";
}

}  // namespace
}  // namespace moat::sandbox
