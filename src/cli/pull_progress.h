// The one-line pull progress display on stderr: bytes and layers done,
// redrawn at most every 100 ms, ended with a newline when it was drawn.
#pragma once

#include <chrono>
#include <functional>

#include "moat/images.h"

namespace moat::cli {

class PullProgressLine {
 public:
  // Draws only when `enabled` (a terminal on stderr, not --quiet).
  explicit PullProgressLine(bool enabled) : enabled_(enabled) {}
  ~PullProgressLine();
  PullProgressLine(const PullProgressLine&) = delete;
  PullProgressLine& operator=(const PullProgressLine&) = delete;

  // A callback for PullOptions::on_progress; valid while this object lives.
  std::function<void(const PullProgress&)> callback();
  // Ends the line (once) so that what follows starts on a line of its own.
  void finish();

 private:
  void draw(const PullProgress& p);

  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace moat::cli
