// The agent's reading of /proc/self/mounts for the virtio-fs mounts a quick
// stop flushes (agent/shared_filesystems.h).
#include "agent/shared_filesystems.h"

#include <gtest/gtest.h>

namespace moat::agent {
namespace {

using Points = std::vector<std::string>;

TEST(SharedFilesystems, OnlyVirtiofsMountsAreFlushed) {
  std::string mounts =
      "/dev/vda /lower erofs ro,relatime 0 0\n"
      "overlay / overlay rw,relatime,lowerdir=/lower,upperdir=/upper/u 0 0\n"
      "vol0 /data virtiofs rw,relatime 0 0\n"
      "tmpfs /tmp tmpfs rw,nosuid,nodev,mode=1777 0 0\n"
      "vol1 /srv/cache virtiofs ro,relatime 0 0\n";
  EXPECT_EQ(virtiofs_mount_points(mounts), (Points{"/data", "/srv/cache"}));
}

TEST(SharedFilesystems, ARootShareIsFlushedToo) {
  EXPECT_EQ(virtiofs_mount_points("root / virtiofs rw 0 0\nproc /proc proc rw 0 0"), (Points{"/"}));
}

TEST(SharedFilesystems, TheKernelsOctalEscapesAreUndone) {
  std::string mounts =
      "vol0 /data\\040dir virtiofs rw 0 0\n"
      "vol1 /tab\\011and\\012newline\\134back virtiofs rw 0 0\n"
      "vol2 /not\\04escape\\9x virtiofs rw 0 0\n"
      "vol3 /end\\ virtiofs rw 0 0\n";
  EXPECT_EQ(virtiofs_mount_points(mounts),
            (Points{"/data dir", "/tab\tand\nnewline\\back", "/not\\04escape\\9x", "/end\\"}));
}

TEST(SharedFilesystems, LinesThatDoNotParseAreSkipped) {
  std::string mounts =
      "\n"
      "vol0\n"
      "vol0 relative virtiofs rw 0 0\n"
      "vol0 /a virtiofsx rw 0 0\n"
      "vol0 /b\n"
      "   vol0    /spaced   virtiofs   rw 0 0\n";
  EXPECT_EQ(virtiofs_mount_points(mounts), (Points{"/spaced"}));
  EXPECT_TRUE(virtiofs_mount_points("").empty());
}

}  // namespace
}  // namespace moat::agent
