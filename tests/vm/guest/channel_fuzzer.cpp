// moat-channel-fuzzer: a test-only guest /init that takes the agent's end of
// the channel and attacks the shim (and the clients behind it) with it.
//
// It says hello like an agent, so the sandbox starts, then sends frames
// without end: random bytes under valid headers, messages of every type
// with fields of the wrong type, size and sign (exit codes, window credits,
// sizes that lie), bodies at every length boundary up to the largest legal
// one, stream ids of other clients' streams, end-of-stream on streams never
// opened, CBOR nested past any depth limit, frames dribbled a byte at a
// time, and stretches where it stops reading what the shim sends. Declared
// lengths never exceed the protocol's maximum: that one violation ends the
// session at once (tests cover it elsewhere), and the point here is what
// the shim tolerates for minutes. A `shutdown` is obeyed, so that `moat
// stop` works as for any guest. The seed is printed on the console.
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "agent/boot_config.h"
#include "agent/channel.h"
#include "proto/frame.h"
#include "proto/message.h"

namespace {

using moat::proto::Json;

std::mt19937_64 rng;

std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng() % n; }
bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }

std::string random_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void say(const std::string& line) {
  std::string text = "channel-fuzzer: " + line + "\n";
  ssize_t w = ::write(1, text.data(), text.size());
  (void)w;
}

// Sizes at and around every boundary a reader might get wrong.
std::size_t boundary_size() {
  static const std::size_t sizes[] = {0,      1,       7,       8,       9,      255,         256,
                                      4095,   4096,    4097,    65535,   65536,  65537,       262144,
                                      524288, 1048000, 1048575, 1048576, 131072, 1u << 19};
  return sizes[below(sizeof sizes / sizeof sizes[0])];
}

std::uint32_t stream_id() {
  switch (below(6)) {
    case 0: return 0;                                   // the control stream
    case 1: return static_cast<std::uint32_t>(1 + below(8));  // where clients' streams are
    case 2: return static_cast<std::uint32_t>(1 + below(256));
    case 3: return 0xffffffffu;
    case 4: return 0x80000000u + static_cast<std::uint32_t>(below(4));
    default: return static_cast<std::uint32_t>(rng());
  }
}

Json random_value(int depth);

Json random_number() {
  switch (below(7)) {
    case 0: return 0;
    case 1: return std::uint64_t{0xffffffffffffffffull};
    case 2: return std::int64_t{-1};
    case 3: return std::int64_t{INT64_MIN};
    case 4: return std::uint64_t{1} << (below(64));
    case 5: return static_cast<double>(rng()) / 3.0;
    default: return static_cast<std::int64_t>(below(70000)) - 10;
  }
}

Json random_value(int depth) {
  switch (below(depth > 3 ? 6 : 8)) {
    case 0: return random_number();
    case 1: return std::string(random_bytes(below(64)).size(), 'a' + static_cast<char>(below(26)));
    case 2: return Json::binary(std::vector<std::uint8_t>(below(8192), static_cast<std::uint8_t>(rng())));
    case 3: return static_cast<bool>(below(2));
    case 4: return nullptr;
    case 5: return std::string(boundary_size() % 70000, 'x');
    case 6: {
      Json a = Json::array();
      for (std::uint64_t i = below(5); i > 0; --i) a.push_back(random_value(depth + 1));
      return a;
    }
    default: {
      Json m = Json::object();
      for (std::uint64_t i = below(5); i > 0; --i) m["k" + std::to_string(below(4))] = random_value(depth + 1);
      return m;
    }
  }
}

const char* const kTypes[] = {"hello",  "ping",   "pong",    "shutdown",    "stop",     "network_update", "ok",
                              "exec",   "started", "stdin",  "stdin_close", "stdout",   "stderr",         "window",
                              "resize", "signal", "cancel",  "exit",        "error",    "stat",           "list",
                              "read",   "write",  "mkdir",   "remove",      "rename",   "chmod",          "chown",
                              "tar_out", "tar_in", "data",   "end",         "entries",  "result"};
const char* const kKeys[] = {"d",    "code", "message", "exit_code", "signal", "n",     "credit", "bytes", "size",
                             "pid",  "version", "agent", "rows",     "cols",   "path",  "entries", "offset",
                             "mode", "uid",  "gid",     "name",      "time_ns", "oom",  "reason"};

std::string type_name() {
  if (chance(90)) return kTypes[below(sizeof kTypes / sizeof kTypes[0])];
  return chance(50) ? std::string(33 + below(64), 't') : random_bytes(below(40));
}

// A message of a real type whose fields are anything.
std::string lying_message() {
  Json p = Json::object();
  for (std::uint64_t i = below(6); i > 0; --i) p[kKeys[below(sizeof kKeys / sizeof kKeys[0])]] = random_value(0);
  if (chance(10)) p = random_value(2);  // not even a map
  Json body = Json::object();
  body["v"] = chance(90) ? Json(moat::proto::kProtocolVersion) : random_number();
  body["t"] = type_name();
  body["p"] = p;
  if (chance(5)) body.erase(chance(50) ? "t" : "v");
  std::vector<std::uint8_t> cbor = Json::to_cbor(body);
  std::string out;
  std::uint8_t flags = chance(30) ? moat::proto::kFlagEndStream : static_cast<std::uint8_t>(below(4) == 0 ? rng() : 0);
  moat::proto::encode_frame(stream_id(), flags, std::string(cbor.begin(), cbor.end()), out);
  return out;
}

// Bytes under a valid header, of a length at a boundary.
std::string garbage_frame() {
  std::string body = random_bytes(chance(70) ? below(512) : boundary_size());
  std::string out;
  moat::proto::encode_frame(stream_id(), static_cast<std::uint8_t>(rng()), body, out);
  return out;
}

// A data message whose bytes fill the frame to a boundary.
std::string big_data_frame() {
  std::size_t n = boundary_size();
  if (n > moat::proto::kMaxBodySize - 64) n = moat::proto::kMaxBodySize - 64;
  auto m = moat::proto::make_data_message(stream_id(), chance(50) ? "stdout" : "data", random_bytes(n));
  return moat::proto::encode_message(m);
}

// CBOR nested far deeper than any reader should follow: arrays of one.
std::string deep_cbor_frame() {
  std::size_t depth = 1000 + below(100000);
  std::string body(depth, static_cast<char>(0x81));
  body.push_back(static_cast<char>(0x00));
  std::string out;
  moat::proto::encode_frame(chance(50) ? 0 : stream_id(), 0, body, out);
  return out;
}

class Fuzzer {
 public:
  explicit Fuzzer(int fd) : fd_(fd) {}

  void hello() {
    Json h = Json::object();
    h["version"] = moat::proto::kProtocolVersion;
    h["agent"] = "channel-fuzzer";
    send_all(moat::proto::encode_message(moat::proto::make_message(moat::proto::kControlStream, "hello", h)));
  }

  [[noreturn]] void run() {
    for (std::uint64_t round = 0;; ++round) {
      if (!deaf_ || chance(1)) drain();
      if (chance(2)) deaf_ = !deaf_;  // stretches without reading
      std::string frame;
      switch (below(10)) {
        case 0: case 1: case 2: case 3: frame = lying_message(); break;
        case 4: case 5: frame = garbage_frame(); break;
        case 6: frame = big_data_frame(); break;
        case 7: frame = deep_cbor_frame(); break;
        case 8: dribble(lying_message()); continue;
        default: {
          // A burst of one well-formed kind, as a real stream would flow.
          auto m = moat::proto::make_data_message(static_cast<std::uint32_t>(1 + below(8)), "stdout",
                                                  random_bytes(below(4096)));
          for (int i = 0; i < 64; ++i) frame += moat::proto::encode_message(m);
        }
      }
      send_all(frame);
      if (round % 1000 == 0) say("round " + std::to_string(round));
    }
  }

 private:
  void send_all(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      // Whatever the shim sends meanwhile must not wedge it, or us.
      struct pollfd p {fd_, static_cast<short>(POLLOUT | (deaf_ ? 0 : POLLIN)), 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      if (p.revents & POLLIN) drain();
      if (!(p.revents & POLLOUT)) continue;
      ssize_t w = ::write(fd_, bytes.data() + off, bytes.size() - off);
      if (w > 0) off += static_cast<std::size_t>(w);
    }
  }

  void dribble(const std::string& bytes) {
    for (char c : bytes.substr(0, 64)) {
      send_all(std::string(1, c));
      ::usleep(1000);
    }
    send_all(bytes.substr(std::min<std::size_t>(64, bytes.size())));
  }

  // Reads what the shim sent; obeys a shutdown.
  void drain() {
    char buf[65536];
    while (true) {
      struct pollfd p {fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return;
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return;
      decoder_.feed(buf, static_cast<std::size_t>(n));
      moat::proto::Frame f;
      while (true) {
        auto got = decoder_.next(f);
        if (!got || !*got) break;
        auto m = moat::proto::decode_message(f);
        if (m && f.stream == moat::proto::kControlStream && (m->type == "shutdown" || m->type == "stop")) {
          say("shutdown asked; powering off");
          ::sync();
          ::reboot(RB_POWER_OFF);
        }
      }
    }
  }

  int fd_;
  bool deaf_ = false;
  moat::proto::FrameDecoder decoder_;
};

std::string read_cmdline() {
  std::ifstream in("/proc/cmdline");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main() {
  ::mkdir("/proc", 0555);
  ::mkdir("/sys", 0555);
  ::mkdir("/dev", 0755);
  ::mount("proc", "/proc", "proc", 0, nullptr);
  ::mount("sysfs", "/sys", "sysfs", 0, nullptr);
  ::mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);
  int console = ::open("/dev/console", O_RDWR | O_NOCTTY);
  if (console >= 0) {
    ::dup2(console, 1);
    ::dup2(console, 2);
  }
  std::uint64_t seed = 0;
  int urandom = ::open("/dev/urandom", O_RDONLY);
  if (urandom < 0 || ::read(urandom, &seed, sizeof seed) != sizeof seed) seed = 20261204;
  rng.seed(seed);
  say("seed " + std::to_string(seed));
  auto cfg = moat::agent::parse_boot_config(read_cmdline());
  auto channel = moat::agent::open_virtio_port(cfg.port_name, 5000);
  if (!channel) {
    say("no channel: " + channel.error().message);
    ::reboot(RB_POWER_OFF);
  }
  Fuzzer fuzzer(channel->get());
  fuzzer.hello();
  fuzzer.run();
}
