// Warm start (docs/sandboxes.md, "Warm start"): the first sandbox of a kind
// boots and leaves a template; the next ones are restored from it, each
// with its own name, entropy and clock and the template's fresh disk; a
// template that does not load is removed and the sandbox boots afresh.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/vm/harness.h"

namespace moat::test {
namespace {

// Templates are in the cache, which the tests share: each test uses a kind
// of sandbox of its own (a RAM size no other test process is likely to use)
// and looks at the templates that appeared since it began.
std::string templates() {
  std::string bin = moat_bin();
  return bin.substr(0, bin.rfind('/')) + "/../test-cache/templates";
}

std::vector<std::string> all_template_keys() {
  std::vector<std::string> keys;
  for (const auto& e : dir_entries(templates()))
    if (e.size() == 32) keys.push_back(e);
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::string shim_log_of(const std::string& name) {
  std::ifstream in(inspected_field(name, "dir") + "/shim.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool restored(const std::string& name) { return shim_log_of(name).find("restored from") != std::string::npos; }

std::string in_guest(const std::string& name, const std::string& script) {
  auto o = run_moat({"exec", name, "--", "sh", "-c", script});
  EXPECT_EQ(o.exit_code, 0) << name << ": " << script << ": " << o.err;
  return o.out;
}

// These check warm start itself, also when the suite is run cold
// (MOAT_WARM_START=0 for every other test).
class VmWarmStart : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("MOAT_WARM_START");
    before_ = all_template_keys();
    kind_ = {"--memory", std::to_string(200 + ::getpid() % 100), "--rootfs-dir", busybox_rootfs()};
  }
  // The templates made since the test began.
  std::vector<std::string> template_keys() const {
    std::vector<std::string> now = all_template_keys(), made;
    std::set_difference(now.begin(), now.end(), before_.begin(), before_.end(), std::back_inserter(made));
    return made;
  }
  // moat ARGS... with this test's kind of sandbox after the first word.
  std::vector<std::string> with_kind(std::vector<std::string> args) const {
    args.insert(args.begin() + 1, kind_.begin(), kind_.end());
    return args;
  }
  std::vector<std::string> before_;
  std::vector<std::string> kind_;
};

TEST_F(VmWarmStart, TheFirstBootLeavesATemplateAndTheNextSandboxesRestoreIt) {
  ASSERT_EQ(run_moat(with_kind({"run", "-d", "--name", "w1"})).exit_code, 0);
  EXPECT_FALSE(restored("w1")) << shim_log_of("w1");
  auto keys = template_keys();
  ASSERT_EQ(keys.size(), 1u) << "the first boot leaves its template";
  for (const char* f : {"memory.state", "memory.ram", "upper.ext4"})
    EXPECT_GT(file_size(templates() + "/" + keys[0] + "/" + f), 0) << f;
  // Written after the template was taken: no later sandbox has it.
  in_guest("w1", "echo w1 > /root/mark");
  const std::string w1_uuid = in_guest("w1", "cat /proc/sys/kernel/random/uuid");

  long long before = ::time(nullptr);
  ASSERT_EQ(run_moat(with_kind({"run", "-d", "--name", "w2"})).exit_code, 0);
  EXPECT_TRUE(restored("w2")) << shim_log_of("w2");
  std::string id = inspected_field("w2", "id");
  std::string own = "moat-" + id;
  EXPECT_EQ(in_guest("w2", "hostname; cat /etc/hostname; grep 127.0.1.1 /etc/hosts"),
            own + "\n" + own + "\n127.0.1.1\t" + own + "\n");
  EXPECT_EQ(in_guest("w2", "ls /root"), "") << "the template's disk is the fresh boot's";
  EXPECT_NE(in_guest("w2", "cat /proc/sys/kernel/random/uuid"), w1_uuid);
  long long guest = std::atoll(in_guest("w2", "date +%s").c_str());
  long long after = ::time(nullptr);
  EXPECT_TRUE(guest >= before - 1 && guest <= after + 1) << guest << " not in " << before << ".." << after;
  // Its disk is its own: what it writes, the next sandbox does not see.
  in_guest("w2", "echo w2 > /root/mark");
  ASSERT_EQ(run_moat(with_kind({"run", "-d", "--name", "w3"})).exit_code, 0);
  EXPECT_TRUE(restored("w3"));
  EXPECT_EQ(in_guest("w3", "ls /root"), "");
  EXPECT_EQ(in_guest("w2", "cat /root/mark"), "w2\n");

  // --cold boots; so does a later start of a warm sandbox.
  ASSERT_EQ(run_moat(with_kind({"run", "-d", "--cold", "--name", "w4"})).exit_code, 0);
  EXPECT_FALSE(restored("w4"));
  ASSERT_EQ(run_moat({"restart", "w2"}).exit_code, 0);
  EXPECT_EQ(in_guest("w2", "cat /root/mark"), "w2\n");
  EXPECT_EQ(in_guest("w2", "hostname"), own + "\n");

  // `moat run`: output and exit code as from a boot, nothing left behind.
  auto ran = run_moat(with_kind({"run", "--", "sh", "-c", "echo hi; hostname; exit 3"}));
  EXPECT_EQ(ran.exit_code, 3) << ran.err;
  EXPECT_EQ(ran.out.substr(0, 3), "hi\n") << ran.out;
  EXPECT_EQ(ran.out.find("moat-" + id), std::string::npos);
  // Another size of disk is another kind: a template of its own.
  ASSERT_EQ(run_moat(with_kind({"run", "--disk-size", "5000", "--", "true"})).exit_code, 0);
  auto both = template_keys();
  EXPECT_EQ(both.size(), 2u);
  EXPECT_NE(std::find(both.begin(), both.end(), keys[0]), both.end()) << "the first template stays";

  for (const char* n : {"w1", "w2", "w3", "w4"}) ASSERT_EQ(run_moat({"rm", "-f", n}).exit_code, 0);
  EXPECT_EQ(leftover_sandboxes(), std::vector<std::string>{});
}

TEST_F(VmWarmStart, ATemplateThatDoesNotLoadIsRemovedAndTheSandboxBootsAfresh) {
  ASSERT_EQ(run_moat(with_kind({"run", "--", "true"})).exit_code, 0);
  auto keys = template_keys();
  ASSERT_EQ(keys.size(), 1u);
  auto damage = [&] {
    std::string state = templates() + "/" + keys[0] + "/memory.state";
    ASSERT_EQ(::truncate(state.c_str(), 4096), 0) << state;
  };
  damage();
  ASSERT_EQ(run_moat(with_kind({"run", "-d", "--name", "d1"})).exit_code, 0);
  EXPECT_NE(shim_log_of("d1").find("restoring the warm-start template"), std::string::npos) << shim_log_of("d1");
  EXPECT_EQ(in_guest("d1", "echo up"), "up\n");
  EXPECT_EQ(template_keys(), std::vector<std::string>{}) << "the damaged template is gone";
  // The next sandbox of the kind makes it again, and the one after uses it.
  ASSERT_EQ(run_moat(with_kind({"run", "-d", "--name", "d2"})).exit_code, 0);
  EXPECT_EQ(template_keys(), keys);
  // The same through `moat run`, which removes its sandbox when it ends.
  damage();
  auto ran = run_moat(with_kind({"run", "--", "echo", "ok"}));
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "ok\n");
  EXPECT_EQ(template_keys(), std::vector<std::string>{});
  for (const char* n : {"d1", "d2"}) ASSERT_EQ(run_moat({"rm", "-f", n}).exit_code, 0);
  EXPECT_EQ(leftover_sandboxes(), std::vector<std::string>{});
}

}  // namespace
}  // namespace moat::test
