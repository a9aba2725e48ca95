// File: lib/base/wait_readable.h
// -----------------------------------------------------------------------------
// Waiting for one descriptor to become readable, with an absolute deadline.

#ifndef FORKSERVER_LIB_BASE_WAIT_READABLE_H_
#define FORKSERVER_LIB_BASE_WAIT_READABLE_H_

#include "absl/time/time.h"

namespace forkserver {

// Waits until `fd` is readable (or hung up) or `deadline` passes; true if
// readable. Retries EINTR with the remaining time. absl::InfiniteFuture()
// waits for ever.
bool WaitReadable(int fd, absl::Time deadline);

// Milliseconds left until `deadline` for poll()/epoll_wait(): -1 for
// InfiniteFuture, 0 once passed, rounded up otherwise.
int RemainingMillis(absl::Time deadline);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_WAIT_READABLE_H_
