// File: lib/child_handle.h
// -----------------------------------------------------------------------------
// A started worker as the library tracks it, whichever way it was started:
//   LocalChild   our own child (start methods "fork" and "spawn"): we reap
//                it with wait4() once its pidfd is readable.
//   ServerChild  the fork server's child: the server reaps it and sends an
//                ExitNotice on the request's connection.
// Both signal through the pidfd (pidfd_send_signal), so a recycled pid can
// never be hit. Internal to the library.

#ifndef FORKSERVER_LIB_CHILD_HANDLE_H_
#define FORKSERVER_LIB_CHILD_HANDLE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/unique_fd.h"

namespace forkserver {

struct ResourceUsage {
  absl::Duration user_cpu;
  absl::Duration system_cpu;
  int64_t max_rss_kib = 0;
};

struct ExitInfo {
  // The exit code, or -N when killed by signal N (multiprocessing's
  // convention).
  int exitcode = 0;
  ResourceUsage usage;
};

class ChildHandle {
 public:
  ChildHandle(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  virtual ~ChildHandle() = default;

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }

  // True once the process has terminated (its pidfd is readable), whether
  // or not its status has been collected.
  bool Terminated() const;

  // Sends `sig` through the pidfd. A child that already exited is not an
  // error (it is what terminate() races with); OK then.
  absl::Status Signal(int sig) const;

  // Waits until the exit status is known or `deadline` passes
  // (absl::InfinitePast(): just look). nullopt while it runs; an error when
  // the status cannot be known (UNAVAILABLE: the fork server died first;
  // INTERNAL: someone else reaped our child).
  virtual absl::StatusOr<std::optional<ExitInfo>> WaitForExit(
      absl::Time deadline) = 0;

 private:
  pid_t pid_;
  UniqueFd pidfd_;
};

// For "fork" and "spawn": `pid` must be our unreaped child.
std::unique_ptr<ChildHandle> MakeLocalChild(pid_t pid, UniqueFd pidfd);

// For "forkserver": the connection the spawn request went over, which
// will carry the ExitNotice.
std::unique_ptr<ChildHandle> MakeServerChild(pid_t pid, UniqueFd pidfd,
                                             UniqueFd connection,
                                             pid_t server_pid);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_CHILD_HANDLE_H_
