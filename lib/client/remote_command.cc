#include "lib/client/remote_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/client/child_handle.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/launch_failure.h"
#include "lib/base/sealed_memfd.h"
#include "lib/base/status_macros.h"
#include "proto/wire.pb.h"

extern char** environ;

namespace forkserver {

absl::StatusOr<std::string> CurrentDirectory() {
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) return ErrnoError("getcwd");
  return std::string(cwd);
}

namespace {

// `path` made absolute against `directory` (this process's cwd when
// empty).
absl::StatusOr<std::string> Absolute(absl::string_view path,
                                     absl::string_view directory) {
  if (!path.empty() && path[0] == '/') return std::string(path);
  std::string base(directory);
  if (base.empty() || base[0] != '/') {
    ASSIGN_OR_RETURN(std::string cwd, CurrentDirectory());
    base = base.empty() ? cwd : absl::StrCat(cwd, "/", base);
  }
  return absl::StrCat(base, "/", path);
}

// As execvp: the first $PATH entry where `name` is an executable file; if
// there is none but some entry has a file of that name we may not
// execute, EACCES (exit 126), else ENOENT (exit 127).
absl::StatusOr<std::string> SearchPath(absl::string_view name,
                                       absl::string_view directory) {
  const char* path = std::getenv("PATH");
  bool denied = false;
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    // An empty entry is the working directory, as for execvp.
    ASSIGN_OR_RETURN(std::string candidate,
                     Absolute(absl::StrCat(dir.empty() ? "." : dir, "/", name),
                              directory));
    struct stat st;
    if (::stat(candidate.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    denied = true;
  }
  if (denied) {
    return WithLaunchFailure(
        absl::PermissionDeniedError(absl::StrCat(
            "'", name, "' is in $PATH but not executable: ",
            std::strerror(EACCES))),
        kPathLookupStep, EACCES);
  }
  return WithLaunchFailure(
      absl::NotFoundError(absl::StrCat("'", name, "' is not in $PATH")),
      kPathLookupStep, ENOENT);
}

}  // namespace

absl::StatusOr<std::string> ResolveProgram(absl::string_view name,
                                           absl::string_view directory) {
  if (name.empty()) return absl::InvalidArgumentError("empty program name");
  if (name.find('/') != absl::string_view::npos) {
    return Absolute(name, directory);
  }
  return SearchPath(name, directory);
}

namespace {

// Requests larger than this carry argv and env in a sealed memfd
// (ExecSpec.strings_in_memfd) instead of the packet (kMaxPacketBytes).
constexpr size_t kMaxInlineExecBytes = 48 * 1024;

// Moves `exec`'s argv and env into a sealed memfd, returned; the caller
// sends it as the packet's last descriptor.
absl::StatusOr<UniqueFd> MoveStringsToMemfd(wire::ExecSpec& exec) {
  wire::ExecStrings strings;
  strings.mutable_argv()->Swap(exec.mutable_argv());
  strings.mutable_env()->Swap(exec.mutable_env());
  exec.set_strings_in_memfd(true);
  return MakeSealedMemfd("forkserver-exec", strings.SerializeAsString());
}

}  // namespace

RemoteCommand::RemoteCommand(std::unique_ptr<ChildHandle> child)
    : child_(std::move(child)) {}
RemoteCommand::RemoteCommand(RemoteCommand&&) noexcept = default;
RemoteCommand& RemoteCommand::operator=(RemoteCommand&&) noexcept = default;
RemoteCommand::~RemoteCommand() = default;

absl::StatusOr<RemoteCommand> RemoteCommand::Start(
    const std::string& socket_path, const CommandSpec& spec) {
  if (spec.argv.empty()) {
    return absl::InvalidArgumentError("a command needs at least argv[0]");
  }
  // The caller's working directory unless told otherwise, resolved here:
  // the server's cwd means nothing to the caller.
  ASSIGN_OR_RETURN(std::string cwd, spec.cwd.empty() ? CurrentDirectory()
                                                     : Absolute(spec.cwd, ""));
  ASSIGN_OR_RETURN(std::string program, ResolveProgram(spec.argv[0], cwd));
  wire::ClientMessage message;
  wire::SpawnRequest& request = *message.mutable_spawn();
  request.set_kind(wire::SPAWN_KIND_EXEC);
  request.set_name(spec.argv[0].substr(0, 64));
  request.set_kill_on_disconnect(spec.kill_on_disconnect);
  wire::ExecSpec& exec = *request.mutable_exec();
  exec.set_path(program);
  for (const std::string& arg : spec.argv) exec.add_argv(arg);
  if (spec.env.has_value()) {
    for (const std::string& entry : *spec.env) exec.add_env(entry);
  } else {
    for (char** entry = environ; entry != nullptr && *entry != nullptr;
         ++entry) {
      exec.add_env(*entry);
    }
  }
  // A sandboxed child starts in its policy's process.cwd (the caller's
  // directory may not exist in its view); asking for another is an error
  // the server names.
  const bool sandboxed = spec.policy.has_value() || !spec.policy_text.empty();
  if (!sandboxed || !spec.cwd.empty()) exec.set_cwd(cwd);
  if (spec.policy.has_value()) *request.mutable_sandbox() = *spec.policy;
  request.set_sandbox_text(spec.policy_text);
  std::vector<int> fds;
  for (const auto& [here, there] : spec.fds) {
    if (::fcntl(here, F_GETFD) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "descriptor ", here, " to pass as the program's ", there,
          " is not open", here < 3 ? " (leave it out of CommandSpec::fds "
                                     "to run the program with it closed)"
                                   : ""));
    }
    request.add_child_fds(there);
    fds.push_back(here);
  }
  UniqueFd strings_memfd;
  if (message.ByteSizeLong() > kMaxInlineExecBytes) {
    ASSIGN_OR_RETURN(strings_memfd, MoveStringsToMemfd(exec));
    fds.push_back(strings_memfd.get());
  }
  // An idle connection to this daemon when there is one (one round trip,
  // no connect or hello), else a fresh one that will be kept.
  ASSIGN_OR_RETURN(internal::ServerConnection connection,
                   internal::ReuseOrConnectToSocket(socket_path));
  ASSIGN_OR_RETURN(internal::ServerReply reply, connection.Request(message, fds));
  if (!reply.message.has_spawned() || reply.fds.size() != 1) {
    return absl::InternalError("spawn reply without a pid and pidfd");
  }
  return RemoteCommand(MakeServerChild(reply.message.spawned().pid(),
                                       std::move(reply.fds[0]),
                                       std::move(connection)));
}

pid_t RemoteCommand::pid() const { return child_->pid(); }
int RemoteCommand::sentinel() const { return child_->pidfd(); }

absl::StatusOr<int> RemoteCommand::Wait(absl::Duration timeout) {
  if (exitcode_.has_value()) return *exitcode_;
  const absl::Time deadline = timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + timeout;
  ASSIGN_OR_RETURN(std::optional<ExitInfo> exit, child_->WaitForExit(deadline));
  if (!exit.has_value()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "pid ", child_->pid(), " still runs after ",
        absl::FormatDuration(timeout)));
  }
  exitcode_ = exit->exitcode;
  stats_ = exit->stats;
  return *exitcode_;
}

absl::Status RemoteCommand::Signal(int sig) {
  if (exitcode_.has_value()) return absl::OkStatus();
  return child_->Signal(sig);
}

}  // namespace forkserver
