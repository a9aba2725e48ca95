#include "lib/remote_command.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/child_handle.h"
#include "lib/fork_server_client.h"
#include "lib/status_macros.h"
#include "proto/wire.pb.h"

extern char** environ;

namespace forkserver {

absl::StatusOr<std::string> ResolveProgram(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty program name");
  if (name.find('/') != absl::string_view::npos) {
    if (name[0] == '/') return std::string(name);
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) return ErrnoError("getcwd");
    return absl::StrCat(cwd, "/", name);
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(
      absl::StrCat("'", name, "' is not in $PATH"));
}

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
  ASSIGN_OR_RETURN(std::string program, ResolveProgram(spec.argv[0]));
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
  exec.set_cwd(spec.cwd);
  std::vector<int> fds;
  for (const auto& [here, there] : spec.fds) {
    request.add_child_fds(there);
    fds.push_back(here);
  }
  ASSIGN_OR_RETURN(internal::ServerConnection connection,
                   internal::ConnectToSocket(socket_path));
  ASSIGN_OR_RETURN(internal::ServerReply reply, connection.Request(message, fds));
  if (!reply.message.has_spawned() || reply.fds.size() != 1) {
    return absl::InternalError("spawn reply without a pid and pidfd");
  }
  const pid_t server_pid = connection.server_pid();
  return RemoteCommand(MakeServerChild(reply.message.spawned().pid(),
                                       std::move(reply.fds[0]),
                                       connection.TakeSocket(), server_pid));
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
  return *exitcode_;
}

absl::Status RemoteCommand::Signal(int sig) {
  if (exitcode_.has_value()) return absl::OkStatus();
  return child_->Signal(sig);
}

}  // namespace forkserver
