#include "cli/pull_progress.h"

#include <cstdio>

namespace moat::cli {

PullProgressLine::~PullProgressLine() { finish(); }

void PullProgressLine::finish() {
  if (drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

std::function<void(const PullProgress&)> PullProgressLine::callback() {
  if (!enabled_) return nullptr;
  return [this](const PullProgress& p) { draw(p); };
}

// Reports arrive one at a time (images.h), so no lock is needed here.
void PullProgressLine::draw(const PullProgress& p) {
  auto now = std::chrono::steady_clock::now();
  if (!p.layer_complete && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  std::fprintf(stderr, "\r\033[Kpulling: %.1f/%.1f MB, %zu/%zu layers", static_cast<double>(p.done) / 1e6,
               static_cast<double>(p.total) / 1e6, p.layers_done, p.layers);
  std::fflush(stderr);
}

}  // namespace moat::cli
