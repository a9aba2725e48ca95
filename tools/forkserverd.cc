// forkserverd: a small, single-threaded daemon that launches programs for
// larger processes (lib/remote_command.h), so they never fork themselves:
// forking a 2 GiB process costs tens of milliseconds; this daemon's fork,
// well under one.
//
//   forkserverd --socket=/run/user/1000/forkserverd/socket
//
// The socket's directory is made (mode 0700) if missing, and must belong
// to this user and not be group- or world-writable. Only peers of this
// user's uid are served. SIGTERM, SIGINT or SIGHUP: the daemon TERMs the
// programs it launched, waits a second, KILLs the rest, removes the socket
// and exits 0.

#include <sys/stat.h>
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
  const std::string directory = socket_path.substr(0, socket_path.rfind('/'));
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    std::perror(("forkserverd: mkdir " + directory).c_str());
    return 1;
  }
  absl::StatusOr<forkserver::UniqueFd> listener =
      forkserver::ListenAt(socket_path);
  if (!listener.ok()) {
    std::fprintf(stderr, "forkserverd: %s\n",
                 listener.status().ToString().c_str());
    return 1;
  }
  std::printf("forkserverd: listening on %s (pid %d)\n", socket_path.c_str(),
              ::getpid());
  std::fflush(stdout);

  forkserver::ServerConfig config;
  config.listener = *std::move(listener);
  config.socket_path = socket_path;
  config.shutdown_on_interrupt = true;
  config.max_connections = absl::GetFlag(FLAGS_max_connections);
  absl::Status served = forkserver::RunForkServer(std::move(config));
  if (!served.ok()) {
    std::fprintf(stderr, "forkserverd: %s\n", served.ToString().c_str());
    return 1;
  }
  return 0;
}
