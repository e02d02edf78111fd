// The moat binary's own errors, without a VM: every one exits 125 with one
// line on stderr and leaves nothing behind; --help exits 0.
#include <dirent.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

void expect_error(const std::vector<std::string>& args, const std::string& message) {
  std::string shown;
  for (const auto& a : args) shown += " " + a.substr(0, 40);
  auto o = run_moat(args);
  EXPECT_EQ(o.exit_code, 125) << "moat" << shown;
  EXPECT_EQ(o.out, "") << "moat" << shown;
  EXPECT_EQ(o.err, "moat: " + message + "\n") << "moat" << shown;
}

// A run that would otherwise create a sandbox: the root is a directory that
// does not exist, so nothing could boot even if the check were missed.
std::vector<std::string> run_with(std::vector<std::string> flags) {
  std::vector<std::string> a = {"run", "--rootfs-dir", "/nonexistent/root"};
  a.insert(a.end(), flags.begin(), flags.end());
  a.insert(a.end(), {"--", "true"});
  return a;
}

TEST(CliErrors, HelpExitsZeroAndParseErrorsExit125) {
  auto help = run_moat({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("moat: run untrusted code in microVMs"), std::string::npos);
  EXPECT_EQ(run_moat({"stop", "--help"}).exit_code, 0);
  expect_error({}, "A subcommand is required (see moat --help)");
  expect_error({"frobnicate"}, "unknown command \"frobnicate\" (see moat --help)");
  expect_error({"stop"}, "sandbox is required (see moat stop --help)");
  expect_error({"ls", "--bogus"}, "The following argument was not expected: --bogus (see moat ls --help)");
  expect_error({"run", "--bogus", "--", "true"}, "unknown option --bogus (see moat run --help)");
  expect_error({"run", "--cpus", "many", "--", "true"}, "Could not convert: --cpus = many (see moat run --help)");
  expect_error({"create", "--cpu-weight", "0"}, "--cpu-weight must be between 1 and 10000");
  expect_error({"create", "--cpu-weight", "10001"}, "--cpu-weight must be between 1 and 10000");
  expect_error({"stats"}, "sandbox is required (see moat stats --help)");
  expect_error({"stats", "nope"}, "no such sandbox: nope");
}

TEST(CliErrors, UnknownObjectsExit125) {
  expect_error({"stop", "nope"}, "no such sandbox: nope");
  expect_error({"start", "nope"}, "no such sandbox: nope");
  expect_error({"rm", "nope"}, "no such sandbox: nope");
  expect_error({"restart", "nope"}, "no such sandbox: nope");
  auto inspect = run_moat({"inspect", "nope"});
  EXPECT_EQ(inspect.exit_code, 125);
  EXPECT_EQ(inspect.err, "moat: no such sandbox: nope\n");
  expect_error({"exec", "nope", "--", "true"}, "no such sandbox: nope");
  expect_error({"logs", "nope"}, "no such sandbox: nope");
  expect_error({"volume", "inspect", "nope"}, "no such volume: nope");
  expect_error({"volume", "rm", "nope"}, "no such volume: nope");
  expect_error({"image", "inspect", "nope:1"}, "no such image: docker.io/library/nope:1");
  expect_error({"image", "rm", "nope:1"}, "no such image: docker.io/library/nope:1");
  expect_error({"cp", "nope:/a", "/tmp/x"}, "no such sandbox: nope");
}

TEST(CliErrors, EventsTakeAKnownFormatAndPrintNothingForAnEmptyHome) {
  expect_error({"events", "--format", "xml"}, "--format xml: expected table or json");
  expect_error({"events", "--since", "-1"}, "--since -1: expected a sequence number (0 or more)");
  auto o = run_moat({"events", "--format", "json"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "");
}

TEST(CliErrors, BadHostNamesAreRefusedBeforeAnythingIsCreated) {
  const std::string rule = " (RFC 1123: letters, digits and '-' in labels of 1 to 63 characters joined by '.')";
  expect_error(run_with({"--hostname", "h moat.port=nope"}),
               "--hostname: invalid host name \"h moat.port=nope\": labels may hold only letters, digits and '-'" + rule);
  expect_error(run_with({"--hostname", "a b"}),
               "--hostname: invalid host name \"a b\": labels may hold only letters, digits and '-'" + rule);
  expect_error(run_with({"--hostname", "x init=/bin/sh"}),
               "--hostname: invalid host name \"x init=/bin/sh\": labels may hold only letters, digits and '-'" + rule);
  expect_error(run_with({"--hostname", "-a"}), "--hostname: invalid host name \"-a\": a label starts or ends with '-'" + rule);
  expect_error(run_with({"--hostname", "a..b"}),
               "--hostname: invalid host name \"a..b\": it has an empty label (\"..\", or a '.' at an end)" + rule);
  expect_error(run_with({"--hostname", std::string(65, 'a')}),
               "--hostname: invalid host name \"" + std::string(65, 'a') +
                   "\": it is longer than 64 characters (the Linux limit)" + rule);
  expect_error({"create", "--rootfs-dir", "/nonexistent/root", "--hostname", "a b"},
               "--hostname: invalid host name \"a b\": labels may hold only letters, digits and '-'" + rule);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(CliErrors, MountPathsMustBeAbsoluteWithoutDotDot) {
  expect_error(run_with({"-v", "/tmp:/data/../etc"}), "-v /tmp:/data/../etc: the guest path \"/data/../etc\" must not contain \"..\"");
  expect_error(run_with({"-v", "/tmp:data"}), "-v /tmp:data: the guest path \"data\" must be absolute");
  expect_error(run_with({"--tmpfs", "/x/..:1m"}), "--tmpfs /x/..:1m: the guest path \"/x/..\" must not contain \"..\"");
  expect_error(run_with({"--tmpfs", "scratch"}), "--tmpfs scratch: the guest path \"scratch\" must be absolute");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

// QEMU's microvm has eight device slots: more volumes than fit fail create
// with the count, before any VM is started, and leave nothing behind.
TEST(CliErrors, MoreVolumesThanTheVmHasSlotsForAreRefused) {
  std::vector<std::string> a = {"create", "--rootfs-dir", busybox_rootfs()};
  for (const char* g : {"/a", "/b", "/c", "/d"}) a.insert(a.end(), {"-v", std::string("/tmp:") + g});
  expect_error(a, "too many volumes: 4 given, room for 3 (the VM has 8 device slots; the agent's channel and entropy "
                  "take 2, the root's disks 2, the network 1; tmpfs mounts take none)");
  a.insert(a.end(), {"--net", "none", "-v", "/tmp:/e"});
  expect_error(a, "too many volumes: 5 given, room for 4 (the VM has 8 device slots; the agent's channel and entropy "
                  "take 2, the root's disks 2; tmpfs mounts take none)");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(CliErrors, EnvironmentOverTheRequestLimitIsNamedBeforeSending) {
  // Nine values of 120 KiB: each fits one argument of the host's execve and
  // of the protocol, together they pass the 1 MiB of one exec request.
  std::vector<std::string> flags;
  for (int i = 0; i < 9; ++i) {
    flags.push_back("-e");
    flags.push_back("V" + std::to_string(i) + "=" + std::string(120 * 1024, 'x'));
  }
  const std::string limit =
      "the command and its environment take 1106080 bytes encoded; one exec request may be at most 1 MiB (1048576 bytes)";
  expect_error(run_with(flags), limit);
  std::vector<std::string> exec = {"exec"};
  exec.insert(exec.end(), flags.begin(), flags.end());
  exec.insert(exec.end(), {"nope", "--", "true"});
  expect_error(exec, limit);
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(CliErrors, LogSizesOutsideTheirRangeAreRefused) {
  expect_error(run_with({"--log-size", "1"}), "--log-size must be between 4k and 1g");
  expect_error(run_with({"--log-size", "0"}), "--log-size must be between 4k and 1g");
  expect_error(run_with({"--log-size", "2g"}), "--log-size must be between 4k and 1g");
  expect_error(run_with({"--log-size", "lots"}),
               "--log-size: bad size \"lots\": give bytes, or a number with k, m, g or t (64m)");
  expect_error(run_with({"--log-size", "most"}),
               "--log-size: bad size \"most\": give bytes, or a number with k, m, g or t (64m)");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(CliErrors, AbsurdDurationsAreRefused) {
  expect_error(run_with({"--timeout", "1e300"}), "--timeout 1e+300: expected a number of seconds from 0 to 31536000");
  expect_error(run_with({"--timeout", "-1"}), "--timeout -1: expected a number of seconds from 0 to 31536000");
  expect_error(run_with({"--timeout", "nan"}), "--timeout nan: expected a number of seconds from 0 to 31536000");
  expect_error(run_with({"--stop-timeout", "-1"}), "--stop-timeout -1: expected a number of seconds from 0 to 86400");
  expect_error(run_with({"--stop-timeout", "inf"}), "--stop-timeout inf: expected a number of seconds from 0 to 86400");
  expect_error(run_with({"--boot-timeout", "1e300"}), "--boot-timeout 1e+300: expected a number of seconds from 1 to 3600");
  expect_error(run_with({"--idle-timeout", "-1"}),
               "--idle-timeout -1: expected a duration such as 90, 30s, 5m or 2h (at most a year)");
  expect_error(run_with({"--max-duration", "nan"}),
               "--max-duration nan: expected a duration such as 90, 30s, 5m or 2h (at most a year)");
  expect_error(run_with({"--max-duration", "1e300h"}),
               "--max-duration 1e300h: expected a duration such as 90, 30s, 5m or 2h (at most a year)");
  expect_error({"stop", "--timeout", "-1", "nope"}, "--timeout -1: expected a number of seconds from 0 to 86400");
  expect_error({"restart", "--timeout", "1e300", "nope"}, "--timeout 1e+300: expected a number of seconds from 0 to 86400");
  expect_error({"exec", "--timeout", "-5", "nope", "--", "true"}, "--timeout -5: expected a number of seconds from 0 to 31536000");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

TEST(CliErrors, BadNetworkFlagsAreRefusedBeforeAnythingIsCreated) {
  expect_error(run_with({"--allow", "*.pypi.org:443", "--deny", "::1"}),
               "bad rule \"::1\": IPv6 addresses go in brackets, as in [::1]:443");
  expect_error(run_with({"--allow", "@lan"}),
               "bad rule \"@lan\": unknown group \"@lan\" (@public @private @loopback @link-local @metadata "
               "@multicast @host)");
  expect_error(run_with({"--deny", "1.2.3.4:90-80"}), "bad rule \"1.2.3.4:90-80\": port range 90-80 is empty");
  expect_error(run_with({"-p", "8080"}), "bad -p \"8080\": expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]");
  expect_error(run_with({"--publish", "0:80"}), "bad -p \"0:80\": port \"0\" is not 1 to 65535");
  expect_error(run_with({"-p", "8080:80", "-p", "127.0.0.1:8080:81"}),
               "bad -p \"127.0.0.1:8080:81\": host port 8080/tcp on 127.0.0.1 is published twice");
  expect_error(run_with({"--add-host", "db.test"}), "bad --add-host \"db.test\": expected NAME:IP");
  expect_error(run_with({"--add-host", "db.test:nope"}),
               "bad --add-host \"db.test:nope\": the address \"nope\" is not an IPv4 or IPv6 address, nor host-gateway");
  expect_error(run_with({"--add-host", "a b:1.2.3.4"}),
               "bad --add-host \"a b:1.2.3.4\": the name \"a b\" is not a domain name (labels of 1 to 63 letters, "
               "digits, '-' or '_', at most 253 bytes)");
  expect_error(run_with({"--dns", "dns.google"}), "bad --dns \"dns.google\": \"dns.google\" is not an IPv4 or IPv6 address");
  expect_error(run_with({"--dns", "1.1.1.1:0"}), "bad --dns \"1.1.1.1:0\": port \"0\" is not 1 to 65535");
  expect_error(run_with({"--net", "open"}), "bad --net \"open\": expected none, public or all");
  expect_error(run_with({"--max-connections", "0"}), "bad --max-connections \"0\": expected a number from 1 to 65536");
  expect_error(run_with({"--egress-rate", "fast"}),
               "--egress-rate: bad size \"fast\": give bytes, or a number with k, m, g or t (64m)");
  expect_error({"create", "--rootfs-dir", "/nonexistent/root", "--net", "none", "--allow", "@lan"},
               "bad rule \"@lan\": unknown group \"@lan\" (@public @private @loopback @link-local @metadata "
               "@multicast @host)");
  // An update's flags are checked before the sandbox is looked for.
  expect_error({"network", "update", "nope", "--deny", "::1"},
               "bad rule \"::1\": IPv6 addresses go in brackets, as in [::1]:443");
  expect_error({"network", "update", "nope", "--net", "open"}, "bad --net \"open\": expected none, public or all");
  expect_error({"network", "update", "nope", "--allow", "1.2.3.4"}, "no such sandbox: nope");
  expect_error({"network", "update"}, "sandbox is required (see moat network update --help)");
  expect_error({"network", "update", "nope", "-p", "8080:80"},
               "The following arguments were not expected: 8080:80 -p (see moat network update --help)");
  EXPECT_TRUE(leftover_sandboxes().empty());
}

}  // namespace
}  // namespace moat::test
