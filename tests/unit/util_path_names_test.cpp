// util/path_names.h: the one walk over a slash-separated path's names (and
// its mkdir -p prefixes) that the host and the guest agent share.
#include "util/path_names.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace moat {
namespace {

std::vector<std::string> names_of(std::string_view path) {
  std::vector<std::string> out;
  EXPECT_TRUE(for_each_path_name(path, [&](std::string_view n) -> Status {
                out.emplace_back(n);
                return ok_status();
              }).ok());
  return out;
}

std::vector<std::string> prefixes_of(std::string_view path) {
  std::vector<std::string> out;
  EXPECT_TRUE(for_each_path_prefix(path, [&](std::string_view p) -> Status {
                out.emplace_back(p);
                return ok_status();
              }).ok());
  return out;
}

using Names = std::vector<std::string>;

TEST(PathNames, NamesSkipEmptyAndDot) {
  EXPECT_EQ(names_of("/a//./b/"), (Names{"a", "b"}));
  EXPECT_EQ(names_of("a/b"), (Names{"a", "b"}));
  EXPECT_EQ(names_of("/a/../b"), (Names{"a", "..", "b"}));  // ".." is the caller's
  EXPECT_EQ(names_of("/"), Names{});
  EXPECT_EQ(names_of(""), Names{});
}

TEST(PathNames, PrefixesAreWhatMkdirPMakes) {
  EXPECT_EQ(prefixes_of("/a//b/"), (Names{"/a", "/a//b"}));
  EXPECT_EQ(prefixes_of("a/b/c"), (Names{"a", "a/b", "a/b/c"}));
  EXPECT_EQ(prefixes_of("/srv"), Names{"/srv"});
  EXPECT_EQ(prefixes_of("/"), Names{});
  EXPECT_EQ(prefixes_of(""), Names{});
}

TEST(PathNames, TheFirstFailingVisitStopsTheWalk) {
  int visits = 0;
  auto st = for_each_path_prefix("/a/b/c", [&](std::string_view p) -> Status {
    ++visits;
    if (p == "/a/b") return make_error("stop at " + std::string(p), EIO);
    return ok_status();
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "stop at /a/b");
  EXPECT_EQ(visits, 2);
}

}  // namespace
}  // namespace moat
