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

// Polls `fd` without blocking for at most `budget`; true as soon as it is
// readable (or hung up). A bounded spin before a blocking wait saves the
// wake-up of a sleeping thread (tens of µs in a VM) when the peer answers
// quickly, and costs nothing once the budget is spent. Always false at
// once on a machine where this process may use only one CPU: there the
// spin would only delay the peer it waits for.
bool SpinUntilReadable(int fd, absl::Duration budget);

// Whether this process may run on more than one CPU (its affinity mask):
// the condition for any spinning wait to pay.
bool MayUseSeveralCpus();

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_WAIT_READABLE_H_
