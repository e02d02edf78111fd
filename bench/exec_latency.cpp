// Exec round-trip latency through the library: one sandbox, N sequential
// execs of `true`, p50/p99/max in milliseconds. Usage: moat_bench_exec [N] [ROOTFS_DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "moat/sandbox.h"

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200;
  moat::SandboxOptions opts;
  if (argc > 2) opts.rootfs_dir = argv[2];
  auto sb = moat::Sandbox::create(opts);
  if (!sb) {
    std::fprintf(stderr, "create: %s\n", sb.error().message.c_str());
    return 1;
  }
  moat::ExecOptions ex;
  ex.argv = {"true"};
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    moat::ExecIo io;
    auto t0 = std::chrono::steady_clock::now();
    auto st = sb->exec(ex, io);
    auto t1 = std::chrono::steady_clock::now();
    if (!st || st->shell_code() != 0) {
      std::fprintf(stderr, "exec failed\n");
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  (void)sb->stop();
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))]; };
  std::printf("library exec true: n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms\n", n, pct(0.50), pct(0.99), ms.back());
  return 0;
}
