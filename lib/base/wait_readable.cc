#include "lib/base/wait_readable.h"

#include <poll.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "absl/time/clock.h"
#include "lib/base/monotonic_clock.h"

namespace forkserver {

int RemainingMillis(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  // Round up so a 0.4 ms remainder still waits instead of spinning.
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

bool WaitReadable(int fd, absl::Time deadline) {
  while (true) {
    pollfd pfd{fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, RemainingMillis(deadline));
    if (rc > 0) return true;
    if (rc == 0) {
      if (absl::Now() >= deadline) return false;
      continue;  // Woke up early because of millisecond rounding.
    }
    if (errno != EINTR) return true;  // Let the caller's read report it.
  }
}

bool MayUseSeveralCpus() {
  // Asked each time (one cheap syscall before a wait that may sleep), so a
  // process re-pinned to one CPU stops spinning at once.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return CPU_COUNT(&set) > 1;
}

bool SpinUntilReadable(int fd, absl::Duration budget) {
  if (budget <= absl::ZeroDuration() || !MayUseSeveralCpus()) return false;
  const absl::Time until = MonotonicNow() + budget;
  do {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 0) != 0) return true;  // Ready, or an error to report.
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } while (MonotonicNow() < until);
  return false;
}

}  // namespace forkserver
