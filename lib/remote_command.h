// File: lib/remote_command.h
// -----------------------------------------------------------------------------
// Launching programs through a fork server that listens at a known socket
// (the standalone daemon tools/forkserverd, which a large process uses so it
// never forks itself): the server forks and execs the program; we get its
// pid, a pidfd, and its exit status.
//
//   forkserver::CommandSpec spec;
//   spec.argv = {"ls", "-l"};                 // looked up in $PATH here
//   ASSIGN_OR_RETURN(forkserver::RemoteCommand ls,
//                    forkserver::RemoteCommand::Start("/run/fsd/socket", spec));
//   ASSIGN_OR_RETURN(int code, ls.Wait());   // -N when killed by signal N

#ifndef FORKSERVER_LIB_REMOTE_COMMAND_H_
#define FORKSERVER_LIB_REMOTE_COMMAND_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace forkserver {

class ChildHandle;

struct CommandSpec {
  // argv[0] names the program: a path, or a name looked up in this
  // process's $PATH (the server needs an absolute path).
  std::vector<std::string> argv;
  // The whole environment; nullopt: this process's.
  std::optional<std::vector<std::string>> env;
  // Working directory; empty: the server's.
  std::string cwd;
  // {descriptor here, number in the program}. By default our stdin,
  // stdout and stderr, so the program writes where we do (not where the
  // daemon does). Everything else is closed in the program.
  std::vector<std::pair<int, int>> fds = {{0, 0}, {1, 1}, {2, 2}};
  // Killed by the server if this process goes away first.
  bool kill_on_disconnect = true;
};

class RemoteCommand {
 public:
  // Errors: NOT_FOUND (no such program, or a failed chdir), PERMISSION_DENIED,
  // UNAVAILABLE (no server at the socket), INVALID_ARGUMENT (bad spec).
  static absl::StatusOr<RemoteCommand> Start(const std::string& socket_path,
                                             const CommandSpec& spec);

  RemoteCommand(RemoteCommand&&) noexcept;
  RemoteCommand& operator=(RemoteCommand&&) noexcept;
  ~RemoteCommand();

  pid_t pid() const;
  // The pidfd: readable when the program has ended.
  int sentinel() const;
  // Its exit code (-N for signal N); DEADLINE_EXCEEDED while it still runs
  // after `timeout`; UNAVAILABLE when the server went away first.
  absl::StatusOr<int> Wait(absl::Duration timeout = absl::InfiniteDuration());
  // Through the pidfd; an ended program is not an error.
  absl::Status Signal(int sig);

 private:
  explicit RemoteCommand(std::unique_ptr<ChildHandle> child);
  std::unique_ptr<ChildHandle> child_;
  std::optional<int> exitcode_;
};

// argv[0] resolved like execvp: as given when it has a '/', else the first
// executable $PATH entry. NOT_FOUND when there is none.
absl::StatusOr<std::string> ResolveProgram(absl::string_view name);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_REMOTE_COMMAND_H_
