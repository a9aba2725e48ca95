#include "lib/restart_limiter.h"

#include "lib/pool_errors.h"

namespace forkserver {

absl::Status RestartLimiter::Step(absl::Time now) {
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
  return absl::OkStatus();
}

}  // namespace forkserver
