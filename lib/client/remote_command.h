// File: lib/client/remote_command.h
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

#ifndef FORKSERVER_LIB_CLIENT_REMOTE_COMMAND_H_
#define FORKSERVER_LIB_CLIENT_REMOTE_COMMAND_H_

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
#include "proto/sandbox.pb.h"
#include "proto/wire.pb.h"

namespace forkserver {

class ChildHandle;

struct CommandSpec {
  // argv[0] names the program: a path (a relative one is taken from
  // `cwd`), or a name looked up in this process's $PATH, as execvp does.
  // The lookup happens here: the server gets an absolute path.
  std::vector<std::string> argv;
  // The whole environment; nullopt: this process's.
  std::optional<std::vector<std::string>> env;
  // The program's working directory; empty: this process's (getcwd() at
  // Start). A relative one is taken from this process's. Never the
  // server's.
  std::string cwd;
  // {descriptor here, number in the program}. By default our stdin,
  // stdout and stderr, so the program writes where we do (not where the
  // daemon does). Everything else is closed in the program. Each must be
  // open (INVALID_ARGUMENT otherwise); the library's own descriptors never
  // take 0, 1 or 2, so a closed one is never silently replaced by ours.
  std::vector<std::pair<int, int>> fds = {{0, 0}, {1, 1}, {2, 2}};
  // Killed by the server if this process goes away first.
  bool kill_on_disconnect = true;
  // Run it sandboxed (a template zygote in the server per policy; see
  // forkserver/templates.h): a Policy, or a textproto profile's text. At
  // most one. The server answers INVALID_ARGUMENT for a profile that does
  // not parse (line:col) or a bad field (named), FAILED_PRECONDITION for a
  // step the host cannot do; never a weaker sandbox. In a sandbox, fds
  // must be within 0..2 and cwd empty (the policy's process.cwd applies).
  std::optional<sandbox::Policy> policy;
  std::string policy_text;
};

class RemoteCommand {
 public:
  // Errors: NOT_FOUND (no such program, or a failed chdir), PERMISSION_DENIED
  // (not executable), UNAVAILABLE (no server at the socket),
  // INVALID_ARGUMENT (bad spec). A failed lookup or child-setup step
  // carries its step and errno (lib/client/launch_failure.h): shells'
  // exit codes 127/126 come from ShellExitCodeForLaunchFailure.
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
  // After Wait() returned: the execution statistics of a sandboxed
  // launch (wall/CPU time, peak RSS, cgroup memory peak, faults, context
  // switches, setup time, kill reason); nullopt otherwise.
  const std::optional<wire::ExecutionStats>& stats() const { return stats_; }

 private:
  explicit RemoteCommand(std::unique_ptr<ChildHandle> child);
  std::unique_ptr<ChildHandle> child_;
  std::optional<int> exitcode_;
  std::optional<wire::ExecutionStats> stats_;
};

// argv[0] resolved like execvp, to an absolute path: a name with a '/'
// against `directory` (this process's cwd when empty or relative), else
// the first $PATH entry holding an executable file of that name.
// NOT_FOUND when there is none; PERMISSION_DENIED when only
// non-executable files of that name are there (both with a path_lookup
// LaunchFailure).
absl::StatusOr<std::string> ResolveProgram(absl::string_view name,
                                           absl::string_view directory = "");

// getcwd(), as a status.
absl::StatusOr<std::string> CurrentDirectory();

}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_REMOTE_COMMAND_H_
