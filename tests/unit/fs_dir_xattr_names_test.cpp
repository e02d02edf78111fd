// The directory backend's mapping of guest xattr names to host ones.
#include <gtest/gtest.h>

#include "fs/dir_xattr_names.h"

namespace moat::fs {
namespace {

TEST(FsDirXattrNames, GuestNamesMapByNamespace) {
  auto user = host_xattr_name("user.comment");
  EXPECT_EQ(user.kind, XattrClass::kPassThrough);
  EXPECT_EQ(user.name, "user.comment");
  auto sec = host_xattr_name("security.capability");
  EXPECT_EQ(sec.kind, XattrClass::kMapped);
  EXPECT_EQ(sec.name, "user.moat.x.security.capability");
  auto trusted = host_xattr_name("trusted.overlay.opaque");
  EXPECT_EQ(trusted.kind, XattrClass::kMapped);
  EXPECT_EQ(trusted.name, "user.moat.x.trusted.overlay.opaque");
  auto own = host_xattr_name("user.moat.stat");
  EXPECT_EQ(own.kind, XattrClass::kPrivate);
  EXPECT_EQ(own.name, "");
  auto sys = host_xattr_name("system.posix_acl_access");
  EXPECT_EQ(sys.kind, XattrClass::kUnsupported);
  EXPECT_EQ(sys.name, "");
}

TEST(FsDirXattrNames, ListingShowsOnlyWhatTheGuestCanReadBack) {
  EXPECT_EQ(guest_xattr_name("user.comment"), "user.comment");
  EXPECT_EQ(guest_xattr_name("user.moat.x.security.capability"), "security.capability");
  EXPECT_EQ(guest_xattr_name("user.moat.stat"), std::nullopt);
  // A mapped name that would not map back (user.*) stays hidden.
  EXPECT_EQ(guest_xattr_name("user.moat.x.user.comment"), std::nullopt);
  EXPECT_EQ(guest_xattr_name("security.selinux"), std::nullopt);
  EXPECT_EQ(guest_xattr_name("trusted.x"), std::nullopt);
}

}  // namespace
}  // namespace moat::fs
