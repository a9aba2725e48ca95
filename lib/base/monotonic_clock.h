// File: lib/base/monotonic_clock.h
// -----------------------------------------------------------------------------
// MonotonicNow(): CLOCK_MONOTONIC as an absl::Time (counted from boot, not
// 1970). For deadlines a component keeps to itself (the server's request
// and shutdown deadlines, the pool's time limits): absl::Now() follows the
// wall clock, and a wall clock stepped back would hold them off.
// Never mix its values with absl::Now()'s.

#ifndef FORKSERVER_LIB_BASE_MONOTONIC_CLOCK_H_
#define FORKSERVER_LIB_BASE_MONOTONIC_CLOCK_H_

#include <time.h>

#include "absl/time/time.h"

namespace forkserver {

inline absl::Time MonotonicNow() {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return absl::UnixEpoch() + absl::DurationFromTimespec(now);
}

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_MONOTONIC_CLOCK_H_
