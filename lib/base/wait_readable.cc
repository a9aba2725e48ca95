#include "lib/base/wait_readable.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "absl/time/clock.h"

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

}  // namespace forkserver
