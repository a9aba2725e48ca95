#include "lib/pool/restart_limiter.h"

#include "lib/pool/pool_errors.h"

namespace forkserver {

absl::Status RestartLimiter::Step(absl::Time now, bool started) {
  if (!started) ++failed_starts_;
  if (window_start_ == absl::InfinitePast() || now - window_start_ >= window_) {
    // A new window begins with this exit.
    window_start_ = now;
    count_ = 0;
  }
  if (count_ >= max_restarts_) {
    const int exceeded = count_ + 1;
    count_ = 0;
    window_start_ = absl::InfinitePast();
    return RestartFreqExceededError(exceeded, window_);
  }
  ++count_;
  if (failed_starts_ > max_restarts_) {
    const int in_a_row = failed_starts_;
    failed_starts_ = 0;
    return RestartFreqExceededError(in_a_row, absl::InfiniteDuration());
  }
  return absl::OkStatus();
}

}  // namespace forkserver
