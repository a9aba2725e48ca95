// File: lib/client/child_handle.h
// -----------------------------------------------------------------------------
// A started worker as the library tracks it, whichever way it was started:
//   LocalChild   our own child (start methods "fork" and "spawn"): we reap
//                it with waitid(P_PIDFD) once its pidfd is readable.
//   ServerChild  the fork server's child: the server reaps it and sends an
//                ExitNotice on the request's connection.
// Both signal through the pidfd (pidfd_send_signal), so a recycled pid can
// never be hit. Internal to the library.

#ifndef FORKSERVER_LIB_CLIENT_CHILD_HANDLE_H_
#define FORKSERVER_LIB_CLIENT_CHILD_HANDLE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/base/unique_fd.h"
#include "lib/client/fork_server_client.h"
#include "proto/wire.pb.h"

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
  // Sandboxed launches: the server's execution statistics and kill reason.
  std::optional<wire::ExecutionStats> stats;
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

  // Sends `sig` to the child's process group (it leads one) and has the
  // group SIGKILLed when the child ends, before it is reaped: while it is
  // unreaped its zombie holds the group id, so no stranger can be hit.
  // LocalChild does both itself; ServerChild asks the fork server, which
  // reaps it.
  virtual absl::Status SignalGroup(int sig) = 0;

  // Waits until the exit status is known or `deadline` passes
  // (absl::InfinitePast(): just look). nullopt while it runs; an error when
  // the status cannot be known (UNAVAILABLE: the fork server died first;
  // INTERNAL: someone else reaped our child on a kernel before 6.15).
  //
  // A local child someone else reaped (possible only for "spawn": after
  // execve it is an ordinary SIGCHLD child, so the application's
  // waitpid(-1) or SIGCHLD=SIG_IGN takes it) still reports its exit code,
  // read from its pidfd (PIDFD_GET_INFO, PIDFD_INFO_EXIT, Linux 6.15);
  // its resource usage is then zero (it went to the reaper).
  virtual absl::StatusOr<std::optional<ExitInfo>> WaitForExit(
      absl::Time deadline) = 0;

 private:
  pid_t pid_;
  UniqueFd pidfd_;
};

// For "fork" and "spawn": `pid` must be our unreaped child.
std::unique_ptr<ChildHandle> MakeLocalChild(pid_t pid, UniqueFd pidfd);

// For "forkserver" and RemoteCommand: the request's ServerConnection,
// which carries the ExitNotice and is then released
// (internal::ServerConnection::Release: kept for the next request).
std::unique_ptr<ChildHandle> MakeServerChild(
    pid_t pid, UniqueFd pidfd, internal::ServerConnection connection);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_CHILD_HANDLE_H_
