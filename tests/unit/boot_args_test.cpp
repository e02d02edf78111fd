// The words the host writes on the guest kernel's command line: no value,
// however hostile, can add a word, and the agent reads back what was meant.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/boot_config.h"
#include "proto/boot_args.h"
#include "proto/guest_mount.h"
#include "vm/qemu_command.h"

namespace moat {
namespace {

// The command line split as the kernel does: at spaces.
std::vector<std::string> words_of(const std::string& cmdline) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < cmdline.size()) {
    std::size_t end = cmdline.find(' ', pos);
    if (end == std::string::npos) end = cmdline.size();
    if (end > pos) out.push_back(cmdline.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

TEST(BootArgs, EncodesEverythingThatCouldSplitAWord) {
  EXPECT_EQ(proto::encode_boot_value("box-1.example"), "box-1.example");
  EXPECT_EQ(proto::encode_boot_value("h moat.port=nope"), "h%20moat.port%3dnope");
  EXPECT_EQ(proto::encode_boot_value("a\"b'c\td\n%"), "a%22b%27c%09d%0a%25");
  EXPECT_EQ(proto::encode_boot_value(std::string("\0\xff", 2)), "%00%ff");
  EXPECT_EQ(proto::boot_word("moat.hostname", "x init=/bin/sh"), "moat.hostname=x%20init%3d/bin/sh");
}

TEST(BootArgs, DecodesWhatItEncodes) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(proto::decode_boot_value(proto::encode_boot_value(all)), all);
  EXPECT_EQ(proto::decode_boot_value("a%2Fb"), "a/b");
  EXPECT_EQ(proto::decode_boot_value("50%"), std::nullopt);
  EXPECT_EQ(proto::decode_boot_value("%4"), std::nullopt);
  EXPECT_EQ(proto::decode_boot_value("%zz"), std::nullopt);
}

TEST(BootArgs, HostNamesFollowRfc1123AndTheLinuxLimit) {
  for (const char* good : {"a", "moat-abc", "A1.b-2.c", "x.y.z"}) EXPECT_TRUE(proto::valid_hostname(good)) << good;
  std::string label63(63, 'a');
  EXPECT_TRUE(proto::valid_hostname(label63));
  for (const std::string& bad : std::vector<std::string>{"", "a b", "-a", "a-", "a..b", ".a", "a.", "a_b", "h moat.port=nope", "a/b",
                          std::string(64, 'a'), std::string(65, 'a') /* > 64 bytes, Linux */}) {
    EXPECT_FALSE(proto::valid_hostname(bad)) << bad;
  }
  EXPECT_EQ(proto::check_hostname("a b").error().message,
            "invalid host name \"a b\": labels may hold only letters, digits and '-' (RFC 1123: letters, digits "
            "and '-' in labels of 1 to 63 characters joined by '.')");
}

TEST(BootArgs, KernelCommandLineKeepsHostileValuesInTheirWord) {
  vm::VmSpec s;
  s.hostname = "h moat.port=nope init=/bin/sh \"q\"";
  proto::GuestMount m;
  m.kind = proto::GuestMount::Kind::kTmpfs;
  m.path = "/a b/\"c\" init=/bin/sh";
  s.mounts.push_back(m);
  s.extra_kernel_args = {"moat.debug=1", "two words", "quote\"d", ""};
  std::string cmdline = vm::kernel_command_line(s);
  auto words = words_of(cmdline);
  for (const auto& w : words) {
    EXPECT_NE(w.rfind("moat.port=", 0), 0u) << cmdline;
    EXPECT_NE(w.rfind("init=", 0), 0u) << cmdline;
    EXPECT_EQ(w.find_first_of("\"'"), std::string::npos) << cmdline;
  }
  EXPECT_EQ(words.back(), "moat.debug=1");
  auto cfg = agent::parse_boot_config(cmdline);
  EXPECT_EQ(cfg.hostname, "moat");  // not a host name: the agent keeps its default
  EXPECT_EQ(cfg.port_name, "agent");
  ASSERT_EQ(cfg.mounts.size(), 1u);
  EXPECT_EQ(cfg.mounts[0].path, m.path);
  EXPECT_EQ(cfg.mount_error, "");
}

// The host's network device and the agent's moat.net option go together.
TEST(BootArgs, NetworkDeviceTurnsOnTheGuestNetwork) {
  vm::VmSpec s;
  EXPECT_FALSE(agent::parse_boot_config(vm::kernel_command_line(s)).network);
  s.net_fd = 5;
  EXPECT_TRUE(agent::parse_boot_config(vm::kernel_command_line(s)).network);
}

TEST(BootArgs, GuestMountValueIsOneWordOfPlainBytes) {
  proto::GuestMount m;
  m.tag = "vol0";
  m.path = "/data dir/it's \"here\"=1,2";
  std::string v = proto::encode_guest_mount(m);
  EXPECT_EQ(v, "virtiofs,vol0,2f64617461206469722f69742773202268657265223d312c32,rw,0");
  EXPECT_EQ(proto::encode_boot_value(v), v);  // nothing left to escape
  auto back = proto::decode_guest_mount(v);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->path, m.path);
}

}  // namespace
}  // namespace moat
