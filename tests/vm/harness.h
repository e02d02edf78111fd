// Helpers for VM tests: run the compiled `moat` binary as a user would, with
// a private state directory per test process, and inspect what it left.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moat::test {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

// Paths of the build under test.
std::string moat_bin();
std::string busybox_rootfs();
std::string share_dir();

// The MOAT_HOME of this test process (created on first use, removed at exit).
std::string test_home();

// Runs moat with args; feeds `input` on stdin (closed after). Extra
// environment entries are KEY=VALUE. Fails the test on a harness error.
Outcome run_moat(const std::vector<std::string>& args, const std::string& input = "",
                 const std::vector<std::string>& extra_env = {}, int timeout_s = 300);

// RLIMIT_NOFILE (soft and hard) of the moat processes started from now on,
// and so of the shims and QEMUs they start; 0 (the default) leaves the
// test's own limit.
void set_child_nofile_limit(unsigned long limit);

// Starts moat in the background with stdout/stderr to pipes.
struct Running {
  pid_t pid = -1;
  int out_fd = -1;
  int err_fd = -1;
};
Running spawn_moat(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {});
// Reads from `fd` until `needle` appears or timeout; returns what was read.
std::string read_until(int fd, const std::string& needle, int timeout_s);
Outcome finish(Running& r, int timeout_s = 120);

// Processes whose command line mentions `needle` (e.g. a sandbox dir:
// its shim, and its QEMU, whose -name is that directory).
std::vector<pid_t> processes_mentioning(const std::string& needle);
// Writes an executable stand-in for QEMU (for MOAT_QEMU) named `name` in a
// directory of the test home that QEMU's jail user may enter; returns its
// path. The jail's root holds that directory, and /usr.
std::string write_fake_qemu(const std::string& name, const std::string& script);
// The QEMU of the sandbox in `sandbox_dir`, or -1.
pid_t qemu_of(const std::string& sandbox_dir);
// A field of `moat inspect NAME` ("id", "state", ...), or "" when there is
// no such sandbox (or field).
std::string inspected_field(const std::string& name, const std::string& field);
// Entries left in the test home's sandboxes/ directory.
std::vector<std::string> leftover_sandboxes();
// Names in `dir` (not . and ..); empty if it cannot be read.
std::vector<std::string> dir_entries(const std::string& dir);

std::string sha256_hex(const std::string& data);
std::string random_bytes(std::size_t n);

// Creates and starts a sandbox and returns its id (fails the test on error).
std::string create_sandbox(const std::vector<std::string>& extra_args = {});

// The size of a file, -1 if it does not exist.
long long file_size(const std::string& path);

}  // namespace moat::test
