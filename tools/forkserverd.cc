// forkserverd: a small, single-threaded daemon that launches programs for
// larger processes (lib/remote_command.h), so they never fork themselves:
// forking a 2 GiB process costs tens of milliseconds; this daemon's fork,
// well under one.
//
//   forkserverd --socket=/run/user/1000/forkserverd/socket
//
// The socket's directory is made (mode 0700) if missing; it must belong to
// this user with mode 0700, and no component of its path may be a symlink
// or changeable by another user. One daemon per socket: a second one on
// the same path exits 1 with "another fork server ... holds". Only peers of this
// user's uid are served. SIGTERM, SIGINT or SIGHUP: the daemon TERMs the
// programs it launched, waits a second, KILLs the rest, removes the socket
// and exits 0.

#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "forkserver/listener.h"
#include "forkserver/server.h"

ABSL_FLAG(std::string, socket, "", "path of the listening socket (required)");
ABSL_FLAG(int, max_connections, 1024, "connections served at once");
ABSL_FLAG(int, warm_workers, 0,
          "entry-mode children kept forked ahead of requests (0..64); the "
          "daemon's own spawns are exec mode, which never uses them");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "forkserverd --socket=PATH: launches programs for processes of this "
      "user that connect to PATH (see lib/remote_command.h, forkserverctl)");
  absl::ParseCommandLine(argc, argv);
  const std::string socket_path = absl::GetFlag(FLAGS_socket);
  if (socket_path.empty()) {
    std::fprintf(stderr, "forkserverd: --socket=PATH is required\n");
    return 2;
  }
  if (absl::Status path = forkserver::CheckSocketPath(socket_path); !path.ok()) {
    std::fprintf(stderr, "forkserverd: %s\n", path.ToString().c_str());
    return 2;
  }
  forkserver::ListenOptions listen_options;
  listen_options.create_directory = true;
  absl::StatusOr<forkserver::ListeningSocket> listener =
      forkserver::ListenAt(socket_path, listen_options);
  if (!listener.ok()) {
    std::fprintf(stderr, "forkserverd: %s\n",
                 listener.status().ToString().c_str());
    return 1;
  }
  // Blocked before we say we listen: a SIGTERM sent as soon as the line
  // appears must reach the server's signalfd (a clean shutdown that
  // removes the socket), not the default action. The server keeps them
  // blocked; children get a clean mask from their setup steps.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  std::printf("forkserverd: listening on %s (pid %d)\n", socket_path.c_str(),
              ::getpid());
  std::fflush(stdout);

  forkserver::ServerConfig config;
  config.listener = std::move(listener->listener);
  // Removed at shutdown through the directory's descriptor, never through
  // a path someone could have re-pointed.
  config.socket_path = listener->PathThroughDirectory();
  config.shutdown_on_interrupt = true;
  config.max_connections = absl::GetFlag(FLAGS_max_connections);
  config.warm_workers = absl::GetFlag(FLAGS_warm_workers);
  absl::Status served = forkserver::RunForkServer(std::move(config));
  listener->RemoveFiles(/*remove_directory=*/false);  // Lock still held.
  if (!served.ok()) {
    std::fprintf(stderr, "forkserverd: %s\n", served.ToString().c_str());
    return 1;
  }
  return 0;
}
