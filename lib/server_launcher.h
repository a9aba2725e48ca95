// File: lib/server_launcher.h
// -----------------------------------------------------------------------------
// Starting the fork server: the application's own binary, exec'd in server
// mode (forkserver/server_main.h) with Boost.Process, and supervising it.
// Internal to the library; lib/fork_server_client.h decides when.

#ifndef FORKSERVER_LIB_SERVER_LAUNCHER_H_
#define FORKSERVER_LIB_SERVER_LAUNCHER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/unique_fd.h"

namespace forkserver {

struct LaunchOptions {
  // Where the private socket directory is made.
  std::string runtime_dir;
  // Launch plus preloads must finish within this.
  absl::Duration start_timeout;
  // The application's argv (argv[0] first), passed after "--" so preloads
  // see the application's arguments.
  std::vector<std::string> application_args;
};

class LaunchedServer {
 public:
  // Makes <runtime_dir>/forkserver-XXXXXX (0700), launches the server and
  // waits until it listens. Errors: INVALID_ARGUMENT for a socket path
  // longer than sun_path; FAILED_PRECONDITION when a preload failed (its
  // message); UNAVAILABLE when the server died during start-up (how it
  // died); DEADLINE_EXCEEDED after start_timeout (the server is killed).
  static absl::StatusOr<std::unique_ptr<LaunchedServer>> Launch(
      const LaunchOptions& options);

  // Kills the server if it still runs, reaps it, removes its socket
  // directory.
  ~LaunchedServer();

  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_path_; }

  // True once the server has exited (reaps it).
  bool Exited();
  // "exited with code 3", "killed by signal 9", or "running".
  std::string DescribeExit();
  // Waits for the exit up to `deadline`; true if it exited.
  bool WaitForExit(absl::Time deadline);
  // Closes the alive pipe: the server shuts down on its own.
  void RequestShutdown() { alive_.reset(); }

  // For a forked child of the launching process: the server is the
  // parent's, so drop every handle without touching the server.
  void Abandon();

 private:
  struct BoostHandle;
  LaunchedServer();

  pid_t pid_ = 0;
  UniqueFd pidfd_;
  UniqueFd alive_;
  std::string directory_;
  std::string socket_path_;
  std::unique_ptr<BoostHandle> handle_;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_SERVER_LAUNCHER_H_
