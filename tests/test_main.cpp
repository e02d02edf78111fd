// The main of every GoogleTest binary: gtest's, plus one rule.
//
// No test passes by skipping. gtest reports a test as skipped both for a
// GTEST_SKIP and for every test of a suite whose SetUpTestSuite failed, and
// ctest (through gtest_discover_tests' "[  SKIPPED ]" pattern) counts a
// skipped test as not failed, so a fixture that could not be built would
// leave `make test` green. This listener sees each test's end before gtest's
// printer does (end events go to listeners in reverse order): a skipped test
// is reported as failed and the process exits with 1 before "[  SKIPPED ]"
// is printed. The reason (the failed assertion of the suite's set-up, or the
// skip's message) has already been printed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace {

class SkipIsFailure : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& test) override {
    if (!test.result()->Skipped()) return;
    std::printf("[  FAILED  ] %s.%s: skipped, and a test must not skip (a failed SetUpTestSuite above, or GTEST_SKIP)\n",
                test.test_suite_name(), test.name());
    std::fflush(stdout);
    std::_Exit(1);
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new SkipIsFailure);
  return RUN_ALL_TESTS();
}
