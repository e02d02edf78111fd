#include "tests/vm/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>


namespace moat::test {
namespace {

std::string g_home;
rlim_t g_child_nofile = 0;  // 0: the children inherit the test's limit

// A shim of an auto-removed sandbox may still be deleting its own directory
// when the test process exits, which makes one rm pass fail on a directory
// that is not empty yet: try a few times.
void remove_home() {
  if (g_home.empty()) return;
  // A test that stopped at a failed assertion may leave sandboxes running:
  // their VMs would spin on, unwatched, and slow every later test. End
  // them, and let rm take their records and cgroups.
  if (auto left = leftover_sandboxes(); !left.empty()) {
    for (pid_t pid : processes_mentioning(g_home + "/sandboxes/")) ::kill(pid, SIGKILL);
    std::vector<std::string> args = {"rm", "-f"};
    args.insert(args.end(), left.begin(), left.end());
    (void)run_moat(args);
  }
  std::string cmd = "rm -rf '" + g_home + "' 2>/dev/null";
  for (int i = 0; i < 20; ++i) {
    if (std::system(cmd.c_str()) == 0 && ::access(g_home.c_str(), F_OK) != 0) return;
    ::usleep(100000);
  }
}

std::vector<std::string> child_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string s = *e;
    if (s.rfind("MOAT_HOME=", 0) == 0 || s.rfind("MOAT_CACHE_DIR=", 0) == 0) continue;
    env.push_back(s);
  }
  env.push_back("MOAT_HOME=" + test_home());
  env.push_back("MOAT_CACHE_DIR=" + std::string(MOAT_BIN_DIR) + "/../test-cache");
  for (const auto& e : extra) env.push_back(e);
  return env;
}

pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& extra_env, int in_fd, int out_fd,
            int err_fd) {
  std::vector<std::string> argv = {moat_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto env = child_env(extra_env);
  std::vector<char*> a, e;
  for (auto& s : argv) a.push_back(s.data());
  a.push_back(nullptr);
  for (auto& s : env) e.push_back(s.data());
  e.push_back(nullptr);
  rlim_t nofile = g_child_nofile;
  pid_t pid = ::fork();
  if (pid == 0) {
    if (nofile != 0) {
      struct rlimit lim {nofile, nofile};
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(127);
    }
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execve(a[0], a.data(), e.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

void set_child_nofile_limit(unsigned long limit) { g_child_nofile = static_cast<rlim_t>(limit); }

std::string moat_bin() { return std::string(MOAT_BIN_DIR) + "/moat"; }
std::string share_dir() { return MOAT_SHARE_DIR; }
std::string busybox_rootfs() { return share_dir() + "/rootfs-busybox"; }

// Made once per test process, thread-safely: tests call this first from
// several threads at once (parallel CLI runs), and two homes would split
// those runs between two databases.
std::string test_home() {
  static const bool made = [] {
    char tmpl[] = "/tmp/moat-test-XXXXXX";
    if (!::mkdtemp(tmpl)) ADD_FAILURE() << "mkdtemp failed";
    g_home = tmpl;
    std::atexit(remove_home);
    return true;
  }();
  (void)made;
  return g_home;
}

Outcome run_moat(const std::vector<std::string>& args, const std::string& input,
                 const std::vector<std::string>& extra_env, int timeout_s) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
    ADD_FAILURE() << "pipe";
    return {};
  }
  auto start = std::chrono::steady_clock::now();
  pid_t pid = spawn(args, extra_env, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  Outcome o;
  std::size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  bool out_open = true, err_open = true;
  auto deadline = start + std::chrono::seconds(timeout_s);
  while (out_open || err_open) {
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
    if (!out_open) fds[0].fd = -1;
    if (!err_open) fds[1].fd = -1;
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) {
      ADD_FAILURE() << "moat timed out after " << timeout_s << " s";
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds, 3, left) < 0 && errno != EINTR) break;
    char buf[65536];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP))) {
        ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          (i == 0 ? out_open : err_open) = false;
        } else {
          (i == 0 ? o.out : o.err).append(buf, static_cast<std::size_t>(n));
        }
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in_fd, input.data() + written, std::min<std::size_t>(65536, input.size() - written));
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN) written = input.size();
      if (written >= input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return o;
}

Running spawn_moat(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) ADD_FAILURE() << "pipe";
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  Running r;
  r.pid = spawn(args, extra_env, devnull, out[1], err[1]);
  ::close(devnull);
  ::close(out[1]);
  ::close(err[1]);
  r.out_fd = out[0];
  r.err_fd = err[0];
  return r;
}

std::string read_until(int fd, const std::string& needle, int timeout_s) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (got.find(needle) == std::string::npos) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) continue;
    char c;
    if (::read(fd, &c, 1) != 1) break;
    got.push_back(c);
  }
  return got;
}

Outcome finish(Running& r, int timeout_s) {
  Outcome o;
  auto drain = [](int fd, std::string& into) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) into.append(buf, static_cast<std::size_t>(n));
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(r.pid, &status, WNOHANG);
    if (w == r.pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "moat did not exit within " << timeout_s << " s";
      ::kill(r.pid, SIGKILL);
      ::waitpid(r.pid, &status, 0);
      break;
    }
    ::usleep(20000);
  }
  drain(r.out_fd, o.out);
  drain(r.err_fd, o.err);
  ::close(r.out_fd);
  ::close(r.err_fd);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> found;
  DIR* d = ::opendir("/proc");
  if (!d) return found;
  while (struct dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline");
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find(needle) != std::string::npos) found.push_back(pid);
  }
  ::closedir(d);
  return found;
}

std::string write_fake_qemu(const std::string& name, const std::string& script) {
  std::string dir = test_home() + "/fake-qemu";
  ::mkdir(dir.c_str(), 0755);
  ::chmod(dir.c_str(), 0755);
  std::string path = dir + "/" + name;
  std::ofstream(path) << script;
  ::chmod(path.c_str(), 0755);
  return path;
}

pid_t qemu_of(const std::string& sandbox_dir) {
  for (pid_t pid : processes_mentioning(sandbox_dir)) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string arg0;
    std::getline(in, arg0, '\0');
    if (arg0.ends_with("qemu-system-x86_64")) return pid;
  }
  return -1;
}

std::string inspected_field(const std::string& name, const std::string& field) {
  auto o = run_moat({"inspect", name});
  std::string key = "\"" + field + "\": \"";
  auto at = o.out.find(key);
  if (o.exit_code != 0 || at == std::string::npos) return "";
  at += key.size();
  return o.out.substr(at, o.out.find('"', at) - at);
}

std::vector<std::string> leftover_sandboxes() { return dir_entries(test_home() + "/sandboxes"); }

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  static const char* h = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex += h[md[i] >> 4];
    hex += h[md[i] & 15];
  }
  return hex;
}

std::string random_bytes(std::size_t n) {
  std::mt19937_64 rng(12345);
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<std::size_t>(8, n - i));
  }
  return s;
}

std::string create_sandbox(const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"create", "--rootfs-dir", busybox_rootfs()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto o = run_moat(args);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  std::string id = o.out;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  EXPECT_EQ(id.size(), 12u) << "id: " << id;
  auto started = run_moat({"start", id});
  EXPECT_EQ(started.exit_code, 0) << started.err;
  return id;
}

long long file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : -1;
}

}  // namespace moat::test
