// The directory backend's handle table: numbering, ownership by node, the
// cap, and a handle outliving its release while in use.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "fs/dir_handle_table.h"

namespace moat::fs {
namespace {

UniqueFd open_null() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(FsDirHandleTable, HandlesAreNumberedFromOneAndBelongToTheirNode) {
  DirHandleTable table(8);
  EXPECT_EQ(table.add(open_null(), 5), 1u);
  EXPECT_EQ(table.add(open_null(), 5), 2u);
  EXPECT_EQ(table.add(open_null(), 6), 3u);
  ASSERT_NE(table.get(1, 5), nullptr);
  EXPECT_EQ(table.get(1, 5)->nodeid, 5u);
  EXPECT_EQ(table.get(3, 5), nullptr);  // node 6's handle
  EXPECT_EQ(table.get(0, 5), nullptr);
  EXPECT_EQ(table.get(4, 5), nullptr);
  EXPECT_FALSE(table.remove(3, 5));
  EXPECT_TRUE(table.remove(3, 6));
  EXPECT_FALSE(table.remove(3, 6));
  EXPECT_EQ(table.size(), 2u);
  // Numbers are not reused.
  EXPECT_EQ(table.add(open_null(), 6), 4u);
}

TEST(FsDirHandleTable, AFullTableRefusesAndClosesTheDescriptor) {
  DirHandleTable table(2);
  EXPECT_EQ(table.add(open_null(), 1), 1u);
  EXPECT_EQ(table.add(open_null(), 1), 2u);
  UniqueFd fd = open_null();
  int raw = fd.get();
  EXPECT_EQ(table.add(std::move(fd), 1), 0u);
  EXPECT_FALSE(is_open(raw));
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(table.remove(1, 1));
  EXPECT_EQ(table.add(open_null(), 1), 3u);
}

TEST(FsDirHandleTable, AHandleInUseStaysOpenPastItsRemoval) {
  DirHandleTable table(4);
  std::uint64_t fh = table.add(open_null(), 9);
  DirHandleRef h = table.get(fh, 9);
  ASSERT_NE(h, nullptr);
  int raw = h->fd.get();
  EXPECT_TRUE(table.remove(fh, 9));
  EXPECT_EQ(table.get(fh, 9), nullptr);
  EXPECT_TRUE(is_open(raw));
  h.reset();
  EXPECT_FALSE(is_open(raw));
}

}  // namespace
}  // namespace moat::fs
