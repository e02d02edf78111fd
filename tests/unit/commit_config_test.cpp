// moat commit's config: Dockerfile instructions applied to the image config,
// the new layer's diff_id and history entry, and bad instructions refused.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sandbox/commit_config.h"

namespace moat::sandbox {
namespace {

using Json = nlohmann::json;

TEST(CommitConfig, InstructionsChangeTheConfigAsDockerCommitDoes) {
  Json c = {{"Env", {"PATH=/usr/bin", "A=1"}}, {"Cmd", {"bash"}}};
  ASSERT_TRUE(apply_change("CMD [\"python3\", \"-c\", \"print(1)\"]", c));
  EXPECT_EQ(c["Cmd"], Json::array({"python3", "-c", "print(1)"}));
  ASSERT_TRUE(apply_change("cmd echo hi && true", c));
  EXPECT_EQ(c["Cmd"], Json::array({"/bin/sh", "-c", "echo hi && true"}));
  ASSERT_TRUE(apply_change("ENTRYPOINT [\"/init\"]", c));
  EXPECT_EQ(c["Entrypoint"], Json::array({"/init"}));
  ASSERT_TRUE(apply_change("ENV A=2 B=x=y", c));
  EXPECT_EQ(c["Env"], Json::array({"PATH=/usr/bin", "A=2", "B=x=y"}));
  ASSERT_TRUE(apply_change("ENV LEGACY some value", c));
  EXPECT_EQ(c["Env"].back(), "LEGACY=some value");
  ASSERT_TRUE(apply_change("LABEL team=infra tier=1", c));
  EXPECT_EQ(c["Labels"], (Json{{"team", "infra"}, {"tier", "1"}}));
  ASSERT_TRUE(apply_change("  WORKDIR /srv/app  ", c));
  EXPECT_EQ(c["WorkingDir"], "/srv/app");
  ASSERT_TRUE(apply_change("USER 1000:1000", c));
  EXPECT_EQ(c["User"], "1000:1000");
}

TEST(CommitConfig, BadInstructionsAreRefusedWithTheReason) {
  Json c = Json::object();
  for (const char* bad : {"RUN make", "CMD", "CMD [1, 2]", "CMD [\"unterminated\"", "ENV =x", "WORKDIR relative",
                          "USER", "EXPOSE 80", "LABEL novalue"}) {
    auto st = apply_change(bad, c);
    EXPECT_FALSE(st) << bad;
    if (!st) {
      EXPECT_EQ(st.error().code, EINVAL) << bad;
    }
  }
  EXPECT_FALSE(apply_change(std::string(70000, 'x'), c));
}

TEST(CommitConfig, TheLayerAndItsHistoryAreAppended) {
  Json base = {{"architecture", "amd64"},
               {"os", "linux"},
               {"config", {{"Env", {"A=1"}}}},
               {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:aa"}}}},
               {"history", {{{"created_by", "base"}}}}};
  CommitOptions o;
  o.changes = {"CMD [\"sh\"]"};
  o.env = {"A=2", "B=3"};
  o.workdir = "/w";
  o.message = "why";
  auto j = commit_config(base, "sha256:bb", o, "2026-12-06T00:00:00Z", "moat commit box");
  ASSERT_TRUE(j) << j.error().message;
  EXPECT_EQ((*j)["rootfs"]["diff_ids"], Json::array({"sha256:aa", "sha256:bb"}));
  EXPECT_EQ((*j)["history"].size(), 2u);
  EXPECT_EQ((*j)["history"][1],
            (Json{{"created", "2026-12-06T00:00:00Z"}, {"created_by", "moat commit box"}, {"comment", "why"}}));
  EXPECT_EQ((*j)["config"]["Env"], Json::array({"A=2", "B=3"}));
  EXPECT_EQ((*j)["config"]["WorkingDir"], "/w");
  EXPECT_EQ((*j)["config"]["Cmd"], Json::array({"sh"}));
  EXPECT_EQ((*j)["created"], "2026-12-06T00:00:00Z");
  EXPECT_EQ((*j)["architecture"], "amd64");

  Json no_rootfs = {{"config", Json::object()}};
  EXPECT_FALSE(commit_config(no_rootfs, "sha256:bb", {}, "t", "b"));
  CommitOptions bad;
  bad.env = {"NOEQUALS"};
  EXPECT_FALSE(commit_config(base, "sha256:bb", bad, "t", "b"));
}

}  // namespace
}  // namespace moat::sandbox
