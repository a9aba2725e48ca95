// File: lib/client/launch_failure.h
// -----------------------------------------------------------------------------
// Which step of a launch failed, and with which errno, carried on the
// absl::Status itself (a payload), so callers need not parse messages:
//   "path_lookup"  the client's execvp-like search for the program
//                  (ResolveProgram, lib/client/remote_command.h)
//   "execve", "chdir", "install_fds", ...  a child-setup step in the
//                  server (forkserver/child/child_setup.h), from the
//                  server's Error reply.
// And the shell's exit code for such a failure: 127 when the program was
// not found, 126 when it was found but could not be executed, as sh(1)
// does.

#ifndef FORKSERVER_LIB_CLIENT_LAUNCH_FAILURE_H_
#define FORKSERVER_LIB_CLIENT_LAUNCH_FAILURE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace forkserver {

inline constexpr absl::string_view kPathLookupStep = "path_lookup";

struct LaunchFailure {
  std::string step;
  int error = 0;  // errno
};

// Returns `status` with the step and errno attached (OK stays OK).
absl::Status WithLaunchFailure(absl::Status status, absl::string_view step,
                               int error);

// What WithLaunchFailure attached; nullopt when nothing was.
std::optional<LaunchFailure> GetLaunchFailure(const absl::Status& status);

// 127 for a program that is not there (path_lookup or execve with ENOENT
// or ENOTDIR), 126 for one that is there but cannot be executed (EACCES,
// EPERM, ENOEXEC, ETXTBSY, EISDIR), nullopt for any other failure.
std::optional<int> ShellExitCodeForLaunchFailure(const absl::Status& status);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_LAUNCH_FAILURE_H_
