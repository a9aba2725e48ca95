// ConnectionTable's sandboxed spawns: forwarding to the template cache
// (forkserver/templates.h) and its answers. Kept apart from
// connection.cc so the plain path stays as it was.

#include <utility>

#include "forkserver/connection.h"

namespace forkserver {
namespace server_internal {

void ConnectionTable::HandleSandboxedSpawn(Connection& connection,
                                           const wire::SpawnRequest& request,
                                           std::vector<UniqueFd>& fds) {
  const int fd = connection.socket.get();
  absl::Status launched =
      options_.templates == nullptr
          ? absl::FailedPreconditionError("this fork server does not run sandboxes")
          : options_.templates->Launch(request, fds, fd, *this);
  if (!launched.ok()) {
    // Bad policies are INVALID_ARGUMENT, host limits FAILED_PRECONDITION:
    // the client's errors, not protocol violations.
    (void)Send(fd, ErrorMessage(launched));
    Close(fd);
    return;
  }
  connection.stage = Stage::kSettingUp;
}

void ConnectionTable::SandboxStarted(int fd, pid_t pid) {
  auto it = connections_.find(fd);
  Child& child = children_.at(pid);
  if (it == connections_.end()) {
    children_.Disown(pid, fd);  // Never announced: killed, as a plain one.
    return;
  }
  it->second.child = pid;
  wire::ServerMessage reply;
  reply.mutable_spawned()->set_pid(pid);
  const int pidfd = child.pidfd.get();
  if (!Send(fd, reply, {&pidfd, 1}).ok()) {
    Close(fd);  // Not announced: the child is killed (ChildTable::Disown).
    return;
  }
  // From here a disconnect kills it only with kill_on_disconnect, exactly
  // as for a plain child.
  child.announced = true;
  it->second.stage = Stage::kRunning;
}

void ConnectionTable::SandboxFailed(int fd, const wire::ServerMessage& error) {
  if (!connections_.contains(fd)) return;
  (void)Send(fd, error);
  Close(fd);
}

void ConnectionTable::SandboxExited(Child& child, const wire::ServerMessage& message) {
  NotifyExit(child, message);
}

}  // namespace server_internal
}  // namespace forkserver
