// File: lib/client/server_launcher.h
// -----------------------------------------------------------------------------
// Starting the fork server: the application's own binary, exec'd in server
// mode (forkserver/server_main.h), and supervising it. Internal to the
// library; lib/fork_server_client.h decides when.
//
// The application may have threads by the time the server is launched, so
// the launch goes through the library's own audited fork path
// (forkserver/child/spawner.h, exec mode): after fork() the child runs only
// the async-signal-safe setup steps and execve. A failing step reports
// {step, errno} to the parent and _exit()s: no atexit handler, no stdio
// flush, no allocator of the application runs in the child. (Boost.Process
// 1.81 ran notify_fork and, on a failed exec, ::exit() in the child.)

#ifndef FORKSERVER_LIB_CLIENT_SERVER_LAUNCHER_H_
#define FORKSERVER_LIB_CLIENT_SERVER_LAUNCHER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

struct LaunchOptions {
  // Where the private socket directory is made.
  std::string runtime_dir;
  // Launch plus preloads must finish within this.
  absl::Duration start_timeout;
  // The application's argv (argv[0] first), passed after "--" so preloads
  // see the application's arguments.
  std::vector<std::string> application_args;
  // What to exec. Only tests change it (to see a failing exec reported).
  std::string executable = "/proc/self/exe";
  // The server's --warm-workers (forkserver/server.h, warm_workers).
  int warm_workers = 0;
  // ForkServerOptions::bind_symbols_at_launch.
  bool bind_now = false;
};

class LaunchedServer {
 public:
  // Makes <runtime_dir>/forkserver-XXXXXX (0700), launches the server and
  // waits until it listens. Errors: INVALID_ARGUMENT for a socket path
  // longer than sun_path; FAILED_PRECONDITION when a preload failed (its
  // message); UNAVAILABLE when the server could not be exec'd (the failed
  // setup step and errno, e.g. "child setup step 'execve' failed:
  // Permission denied") or died during start-up (how it died);
  // DEADLINE_EXCEEDED after start_timeout (the server is killed).
  // The server gets the alive pipe's read end at fd 3, the ready pipe's
  // write end at 4 and the socket's lock at 5, nothing else but 0, 1, 2.
  static absl::StatusOr<std::unique_ptr<LaunchedServer>> Launch(
      const LaunchOptions& options);

  // Kills the server if it still runs, reaps it, removes its socket
  // directory.
  ~LaunchedServer();

  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_path_; }

  // True once the server has exited (reaps it through its pidfd; a server
  // someone else reaped, by waitpid(-1), counts as exited).
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
  LaunchedServer() = default;
  absl::Status PrepareDirectory(const std::string& runtime_dir);
  absl::Status Exec(const LaunchOptions& options, int alive_fd, int ready_fd,
                    int lock_fd);
  absl::Status AwaitReady(int ready_fd, absl::Duration timeout);

  bool abandoned_ = false;
  pid_t pid_ = 0;
  // Filled in once the server has been reaped: "exited with code 3", ...
  std::string exit_description_;
  UniqueFd pidfd_;
  UniqueFd alive_;
  std::string directory_;
  UniqueFd directory_fd_;  // O_PATH, checked 0700
  std::string socket_path_;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_SERVER_LAUNCHER_H_
