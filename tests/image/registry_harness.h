// Test support for the registry tests: running programs with captured
// output, free loopback ports, and a Debian docker-registry started on
// 127.0.0.1 with its own storage and config, stopped by the destructor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "command_run.h"
#include "image/erofs_check.h"

namespace moat::image::testing {

// run(), slurp() and CmdResult (tests/command_run.h), under this namespace
// too, as the image tests have always called them.
using moat::test_commands::CmdResult;
using moat::test_commands::run;
using moat::test_commands::slurp;

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A child process in the background, killed and reaped by stop() or the
// destructor. Its output goes to `log`.
class Background {
 public:
  Background() = default;
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background() { stop(); }

  bool start(const std::vector<std::string>& argv, const std::string& log,
             const std::vector<std::string>& env = {}) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    return pid_ > 0;
  }
  bool running() const { return pid_ > 0; }
  // SIGKILL, as a crash or the OOM killer would.
  void kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Debian's docker-registry (distribution 2.x) on 127.0.0.1:<random port>.
class LocalRegistry {
 public:
  // Empty string on success, otherwise what went wrong.
  std::string start(const std::string& dir) {
    port_ = free_port();
    if (port_ <= 0) return "no free port";
    std::filesystem::create_directories(dir + "/storage");
    std::string config = dir + "/config.yml";
    std::ofstream(config) << "version: 0.1\n"
                             "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                             "storage:\n  filesystem:\n    rootdirectory: " << dir << "/storage\n"
                             "  delete:\n    enabled: true\n"
                             "http:\n  addr: 127.0.0.1:" << port_ << "\n";
    log_ = dir + "/registry.log";
    if (!proc_.start({"docker-registry", "serve", config}, log_)) return "fork failed";
    if (!wait_for_port(port_, std::chrono::seconds(20))) {
      return "docker-registry did not listen on port " + std::to_string(port_) + ": " + slurp(log_);
    }
    return "";
  }
  void stop() { proc_.stop(); }
  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  Background proc_;
  int port_ = -1;
  std::string log_;
};

// The CLI under test.
inline std::string image_cli(const std::string&) { return std::string(MOAT_BIN_DIR) + "/moat"; }

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moat::image::testing
