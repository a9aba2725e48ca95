// File: lib/process_launch.h
// -----------------------------------------------------------------------------
// The three start methods, each turning a LaunchRequest into a running
// child (lib/child_handle.h). Process::Start() picks one; so will Pool.
// Internal to the library.

#ifndef FORKSERVER_LIB_PROCESS_LAUNCH_H_
#define FORKSERVER_LIB_PROCESS_LAUNCH_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/child_handle.h"
#include "lib/start_method.h"

namespace forkserver {

struct LaunchRequest {
  std::string entry;
  absl::string_view arg;
  std::string name;
  // Daemon: the fork server kills it if this process goes away.
  bool daemon = false;
  // {descriptor in this process, number in the child}.
  std::vector<std::pair<int, int>> fds;
};

// Checks the request (entry registered, descriptors open, child numbers
// unique and in range, not too many), then starts the child with `method`.
// Returns once the child is set up (its fds installed, for "spawn" its
// execve done): a failing setup step is an error naming the step.
absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchChild(
    StartMethod method, const LaunchRequest& request);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_PROCESS_LAUNCH_H_
