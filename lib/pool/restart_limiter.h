// File: lib/pool/restart_limiter.h
// -----------------------------------------------------------------------------
// Restart-storm protection, Erlang's maxR in maxT (billiard's
// restart_state): a pool may replace at most `max_restarts` workers that
// exited unsuccessfully within `window`; one more is RestartFreqExceeded.
// Clean exits (0, recycling's 155) and terminations the pool asked for are
// not counted; a worker accepting a job proves start-up works and resets
// the count.
//
// A second trigger does not depend on speed: more than `max_restarts`
// workers in a row that died before they finished starting (their
// initializer failed, or they crashed first). A rate limit alone lets a
// slow crash loop (say, a big binary started with "spawn") spin forever
// under the rate. A worker that starts resets this count.
//
// Not thread-safe (the pool holds its lock).

#ifndef FORKSERVER_LIB_POOL_RESTART_LIMITER_H_
#define FORKSERVER_LIB_POOL_RESTART_LIMITER_H_

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace forkserver {

class RestartLimiter {
 public:
  RestartLimiter(int max_restarts, absl::Duration window)
      : max_restarts_(max_restarts), window_(window) {}

  // Counts one unsuccessful exit at `now` (of a worker that had or had not
  // `started`). RestartFreqExceededError when it is more than max_restarts
  // within the window, or more than max_restarts failed starts in a row.
  absl::Status Step(absl::Time now, bool started = true);

  // A worker accepted a job.
  void Reset() { count_ = 0; }
  // A worker finished starting.
  void WorkerStarted() { failed_starts_ = 0; }
  int count() const { return count_; }

 private:
  int max_restarts_;
  absl::Duration window_;
  int count_ = 0;
  int failed_starts_ = 0;
  absl::Time window_start_ = absl::InfinitePast();
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_RESTART_LIMITER_H_
