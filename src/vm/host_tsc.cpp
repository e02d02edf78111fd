#include "vm/host_tsc.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <mutex>
#include <thread>

#include "util/read_file.h"
#include "util/write_file_atomic.h"

namespace moat::vm {
namespace {

constexpr char kCacheDir[] = "/run/moat";
constexpr char kCachePath[] = "/run/moat/host-tsc-khz";

#if defined(__x86_64__)
std::uint64_t read_tsc() {
  std::uint32_t lo = 0, hi = 0;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

// A TSC reading and a clock reading taken as close together as this thread
// could: of several tries, the one whose two TSC reads around the clock are
// nearest (a try the host interrupted is much wider).
struct Pair {
  std::uint64_t tsc = 0;
  std::int64_t ns = 0;
};

Pair read_pair() {
  Pair best;
  std::uint64_t best_width = UINT64_MAX;
  for (int i = 0; i < 9; ++i) {
    std::uint64_t before = read_tsc();
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    std::uint64_t after = read_tsc();
    if (after - before < best_width) {
      best_width = after - before;
      best = {before + (after - before) / 2, static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec};
    }
  }
  return best;
}

// Two pairs 20 ms apart: a few hundred nanoseconds of error at each end is
// ~20 ppm, a second a day, far inside what the kernel's own calibration
// would give (it then refines the rate against the emulated HPET or PM
// timer anyway, keeping it when the two agree within 1 %).
std::uint32_t measure_tsc_khz() {
  Pair a = read_pair();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Pair b = read_pair();
  if (b.ns <= a.ns || b.tsc <= a.tsc) return 0;
  // kHz = ticks per millisecond; ticks * 1e6 fits: 20 ms at 20 GHz is 4e8.
  std::uint64_t khz = ((b.tsc - a.tsc) * 1'000'000 + static_cast<std::uint64_t>(b.ns - a.ns) / 2) /
                      static_cast<std::uint64_t>(b.ns - a.ns);
  return plausible_tsc_khz(khz) ? static_cast<std::uint32_t>(khz) : 0;
}

bool tsc_rate_is_constant() {
  auto cpuinfo = read_file_bounded("/proc/cpuinfo", 16 << 20);
  if (!cpuinfo) return false;
  std::string_view text = *cpuinfo;
  std::size_t flags = text.find("\nflags");
  if (flags == std::string_view::npos) return false;
  std::string_view line = text.substr(flags + 1, text.find('\n', flags + 1) - flags - 1);
  auto has = [&](std::string_view flag) {
    for (std::size_t at = 0; (at = line.find(flag, at)) != std::string_view::npos; at += flag.size()) {
      bool starts = at > 0 && (line[at - 1] == ' ' || line[at - 1] == '\t');
      bool ends = at + flag.size() == line.size() || line[at + flag.size()] == ' ';
      if (starts && ends) return true;
    }
    return false;
  };
  return has("constant_tsc") && has("nonstop_tsc");
}

std::string boot_id() {
  auto id = read_file_bounded("/proc/sys/kernel/random/boot_id", 64);
  if (!id) return "";
  while (!id->empty() && id->back() == '\n') id->pop_back();
  return *id;
}

std::uint32_t cached_or_measured() {
  // A rate cached for this boot was measured on a TSC whose rate does not
  // change: only a measurement needs /proc/cpuinfo's word for it (a long
  // file on a big host, and read by every shim).
  std::string boot = boot_id();
  if (!boot.empty()) {
    if (auto text = read_file_bounded(kCachePath, 256)) {
      if (auto khz = tsc_from_cache_text(*text, boot)) return *khz;
    }
  }
  if (!tsc_rate_is_constant()) return 0;
  std::uint32_t khz = measure_tsc_khz();
  // The cache is a convenience: without it (not root, a read-only /run)
  // each process measures again.
  if (khz != 0 && !boot.empty() && (::mkdir(kCacheDir, 0755) == 0 || errno == EEXIST))
    (void)write_file_atomic(kCachePath, tsc_cache_text(boot, khz), 0644);
  return khz;
}
#else
std::uint32_t cached_or_measured() { return 0; }
#endif

}  // namespace

bool plausible_tsc_khz(std::uint64_t khz) { return khz >= 100'000 && khz <= 20'000'000; }

std::string tsc_cache_text(std::string_view boot_id, std::uint32_t khz) {
  return std::string(boot_id) + " " + std::to_string(khz) + "\n";
}

std::optional<std::uint32_t> tsc_from_cache_text(std::string_view text, std::string_view boot_id) {
  if (boot_id.empty() || text.size() < boot_id.size() + 3) return std::nullopt;
  if (text.substr(0, boot_id.size()) != boot_id || text[boot_id.size()] != ' ') return std::nullopt;
  std::string_view number = text.substr(boot_id.size() + 1);
  if (number.empty() || number.back() != '\n') return std::nullopt;
  number.remove_suffix(1);
  std::uint64_t khz = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), khz);
  if (ec != std::errc() || end != number.data() + number.size() || !plausible_tsc_khz(khz)) return std::nullopt;
  return static_cast<std::uint32_t>(khz);
}

std::uint32_t host_tsc_khz() {
  static std::once_flag once;
  static std::uint32_t khz = 0;
  std::call_once(once, [] { khz = cached_or_measured(); });
  return khz;
}

}  // namespace moat::vm
