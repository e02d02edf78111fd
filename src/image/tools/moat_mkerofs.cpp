// moat-mkerofs: builds an EROFS image from OCI layer tars, base layer first.
//
//   moat-mkerofs [--tmpdir DIR] [--diff-id sha256:...]... --layer FILE... OUTPUT
//
// A development and benchmarking tool; moat itself calls the library.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "image/layers/image_builder.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: moat-mkerofs [--tmpdir DIR] [--diff-id DIGEST]... --layer FILE... OUTPUT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> layers;
  std::string output;
  moat::image::BuildOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--layer" && has_value) {
      layers.push_back(argv[++i]);
    } else if (arg == "--tmpdir" && has_value) {
      options.tmp_dir = argv[++i];
    } else if (arg == "--diff-id" && has_value) {
      options.expected_diff_ids.push_back(argv[++i]);
    } else if (arg.rfind("--", 0) == 0 || !output.empty()) {
      return usage();
    } else {
      output = arg;
    }
  }
  if (layers.empty() || output.empty()) return usage();
  auto start = std::chrono::steady_clock::now();
  auto result = moat::image::build_erofs_image(layers, output, options);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!result.ok()) {
    std::fprintf(stderr, "moat-mkerofs: %s\n", result.error().message.c_str());
    return 1;
  }
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  for (const std::string& id : result->diff_ids) std::printf("diff_id %s\n", id.c_str());
  std::printf("entries %llu inodes %llu bytes %llu seconds %.3f max_rss_kib %ld\n",
              static_cast<unsigned long long>(result->layers.entries),
              static_cast<unsigned long long>(result->erofs.inodes),
              static_cast<unsigned long long>(result->erofs.bytes), seconds, usage.ru_maxrss);
  return 0;
}
