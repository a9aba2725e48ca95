// File: lib/process/process_launch.h
// -----------------------------------------------------------------------------
// The three start methods, each turning a LaunchRequest into a running
// child (lib/child_handle.h). Process::Start() picks one; so will Pool.
// Internal to the library.

#ifndef FORKSERVER_LIB_PROCESS_PROCESS_LAUNCH_H_
#define FORKSERVER_LIB_PROCESS_PROCESS_LAUNCH_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/client/child_handle.h"
#include "lib/process/start_method.h"
#include "proto/sandbox.pb.h"

namespace forkserver {

struct LaunchRequest {
  std::string entry;
  absl::string_view arg;
  std::string name;
  // Daemon: killed (SIGKILL) if this process goes away, even abruptly.
  // "forkserver": the server kills it when our connection closes. "fork"
  // and "spawn": PR_SET_PDEATHSIG(SIGKILL), which Linux fires when the
  // *thread* that started the child ends, so start daemons from a thread
  // that outlives them.
  bool daemon = false;
  // {descriptor in this process, number in the child}.
  std::vector<std::pair<int, int>> fds;
  // Run it in this sandbox (ProcessOptions::sandbox): "forkserver" only.
  const sandbox::Policy* sandbox = nullptr;
};

// Checks the request (entry registered, descriptors open, child numbers
// unique and in range, not too many), then starts the child with `method`.
// Returns once the child is set up (its fds installed, for "spawn" its
// execve done): a failing setup step is an error naming the step.
absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchChild(
    StartMethod method, const LaunchRequest& request);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_PROCESS_PROCESS_LAUNCH_H_
