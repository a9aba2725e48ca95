#include "forkserver/connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/fd_budget.h"
#include "forkserver/listener.h"
#include "forkserver/request_validation.h"
#include "forkserver/server_log.h"
#include "lib/base/monotonic_clock.h"
#include "lib/ipc/seqpacket.h"

namespace forkserver {
namespace server_internal {

namespace {

// Descriptors truncated (MSG_CTRUNC) because our own table is full are
// not the client's fault: RESOURCE_EXHAUSTED, saying so.
absl::Status OutOfFdsOr(const absl::Status& received) {
  if (absl::IsInvalidArgument(received) &&
      absl::StrContains(received.message(), "descriptors were truncated") &&
      FdTableNearlyFull()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "fork server is out of file descriptors (RLIMIT_NOFILE ", FdLimit(),
        "): the request's descriptors could not be received"));
  }
  return received;
}

}  // namespace

wire::ServerMessage ErrorMessage(const absl::Status& status) {
  wire::ServerMessage message;
  message.mutable_error()->set_code(static_cast<int>(status.code()));
  message.mutable_error()->set_message(std::string(status.message()));
  return message;
}

void ConnectionTable::Accept(UniqueFd socket) {
  const int fd = socket.get();
  Connection& connection = connections_[fd];
  ++accepted_total_;
  connection.socket = std::move(socket);
  connection.deadline = MonotonicNow() + options_.request_timeout;
  events_.Watch(fd, EventSource::kConnection);
  if (absl::Status peer = CheckPeerUid(fd, ::geteuid()); !peer.ok()) {
    Reject(fd, peer);
    return;
  }
  const size_t serving = connections_.size() - static_cast<size_t>(lingering_);
  if (serving > static_cast<size_t>(options_.max_connections)) {
    Reject(fd, absl::ResourceExhaustedError(absl::StrCat(
                   "fork server has ", options_.max_connections,
                   " connections open already")));
  }
}

void ConnectionTable::OnReadable(int fd) {
  Connection& connection = connections_.at(fd);
  if (connection.stage == Stage::kClosing) {
    Drain(connection);
    return;
  }
  Packet packet;
  absl::Status received = ReceiveUntrustedPacket(fd, absl::InfinitePast(), &packet);
  absl::Cleanup release = [&] { ReleaseClientFds(packet.fds); };
  if (absl::IsDeadlineExceeded(received)) return;  // Spurious wake-up.
  if (!received.ok()) {
    if (IsPeerClosed(received)) {
      Close(fd);  // The client went away; nothing to log.
    } else {
      Reject(fd, OutOfFdsOr(received));
    }
    return;
  }
  if (connection.stage == Stage::kSettingUp ||
      connection.stage == Stage::kRunning) {
    OnMessageWhileRunning(connection, packet);
    return;
  }
  absl::StatusOr<wire::ClientMessage> message =
      ParseClientMessage(packet.bytes);
  if (!message.ok()) {
    Reject(fd, message.status());
    return;
  }
  if (connection.stage == Stage::kAwaitHello) {
    if (message->msg_case() != wire::ClientMessage::kHello) {
      Reject(fd, absl::InvalidArgumentError("first message is not a hello"));
      return;
    }
    HandleHello(connection, message->hello(), packet.fds.size());
    return;
  }
  OnRequest(connection, *message, packet.fds);
}

// While its child runs a connection may only ask for the child's process
// group to be signalled; anything else is a protocol error.
void ConnectionTable::OnMessageWhileRunning(Connection& connection,
                                            const Packet& packet) {
  const int fd = connection.socket.get();
  absl::StatusOr<wire::ClientMessage> message =
      ParseClientMessage(packet.bytes);
  if (!message.ok() || connection.stage != Stage::kRunning ||
      message->msg_case() != wire::ClientMessage::kSignalGroup ||
      !packet.fds.empty()) {
    Reject(fd, absl::InvalidArgumentError(
                   "unexpected message while a spawned child runs"));
    return;
  }
  const int sig = message->signal_group().signal();
  const Child* child = children_.Find(connection.child);
  // A sandboxed child's group is its template's to signal (it reaps it).
  absl::Status signalled = CheckSignalNumber(sig);
  if (signalled.ok()) {
    signalled = child != nullptr && child->reaped_by_template && options_.templates != nullptr
                    ? options_.templates->SignalGroup(connection.child, sig)
                    : children_.SignalGroup(connection.child, sig);
  }
  if (!signalled.ok()) Reject(fd, signalled);
}

// After the hello: a spawn or a status request, nothing else.
void ConnectionTable::OnRequest(Connection& connection,
                                const wire::ClientMessage& message,
                                std::vector<UniqueFd>& fds) {
  const int fd = connection.socket.get();
  switch (message.msg_case()) {
    case wire::ClientMessage::kSpawn:
      HandleSpawn(connection, message.spawn(), fds);
      return;
    case wire::ClientMessage::kStatus:
      if (!fds.empty()) {
        Reject(fd, absl::InvalidArgumentError("status request with fds"));
        return;
      }
      HandleStatus(connection);
      return;
    case wire::ClientMessage::kSignalGroup:
      // A kept connection whose child's exit notice crossed this on the
      // way: the child is gone (its number may be reused), so there is
      // nothing to signal, as for an empty group. The connection stays.
      if (!fds.empty()) {
        Reject(fd, absl::InvalidArgumentError("signal_group request with fds"));
      }
      return;
    case wire::ClientMessage::kHello:
      Reject(fd, absl::InvalidArgumentError("a second hello"));
      return;
    default:
      Reject(fd, absl::InvalidArgumentError("unexpected message: no child runs on this connection"));
      return;
  }
}

void ConnectionTable::HandleHello(Connection& connection,
                                  const wire::Hello& hello, size_t fd_count) {
  const int fd = connection.socket.get();
  if (absl::Status valid = ValidateHello(hello, fd_count); !valid.ok()) {
    Reject(fd, valid);
    return;
  }
  wire::ServerMessage reply;
  reply.mutable_hello()->set_version(wire::PROTOCOL_VERSION_1);
  reply.mutable_hello()->set_server_pid(::getpid());
  connection.keep_alive = hello.keep_alive();
  if (connection.keep_alive) {
    reply.mutable_hello()->set_keep_alive(true);
    reply.mutable_hello()->set_idle_timeout_ms(
        absl::ToInt64Milliseconds(options_.request_timeout));
  }
  if (absl::Status sent = Send(fd, reply); !sent.ok()) {
    Close(fd);
    return;
  }
  connection.stage = Stage::kAwaitRequest;
}

void ConnectionTable::HandleStatus(Connection& connection) {
  wire::ServerMessage reply;
  wire::StatusReply& status = *reply.mutable_status();
  status.set_server_pid(::getpid());
  status.set_uptime_usec(
      absl::ToInt64Microseconds(MonotonicNow() - options_.started));
  status.set_preload_usec(
      absl::ToInt64Microseconds(options_.preload_duration));
  status.set_live_children(static_cast<int>(children_.size()));
  status.set_spawned_total(children_.spawned_total());
  status.set_open_connections(static_cast<int>(connections_.size()));
  status.set_open_fds(CountOpenFds());
  status.set_rejected_total(rejected_total_);
  status.set_last_rejection(last_rejection_);
  if (options_.templates != nullptr) options_.templates->FillStatus(status);
  status.set_log_lines_dropped(LogLinesDropped());
  status.set_max_connections(options_.max_connections);
  status.set_fd_limit(FdLimit());
  status.set_orphans_reaped(children_.strangers_reaped());
  status.set_accepted_total(accepted_total_);
  children_.warm().FillStatus(status);
  const int fd = connection.socket.get();
  if (!Send(fd, reply).ok()) {
    Finish(fd);
    return;
  }
  RequestDone(fd);
}

void ConnectionTable::HandleSpawn(Connection& connection,
                                  const wire::SpawnRequest& request,
                                  std::vector<UniqueFd>& fds) {
  const int fd = connection.socket.get();
  if (absl::Status valid = ValidateSpawnRequest(request, fds.size());
      !valid.ok()) {
    Reject(fd, valid);
    return;
  }
  // A child that outlives its connection (the client read its pid and
  // left) still holds its pidfd here: the descriptor budget
  // (fd_budget.h) carries max_connections children in all, connected or
  // not, so past that a client is told, before the table runs out for
  // everyone (and a template's answer with it).
  if (children_.size() >= static_cast<size_t>(options_.max_connections)) {
    (void)Send(fd, ErrorMessage(absl::ResourceExhaustedError(absl::StrCat(
                       "fork server has ", children_.size(),
                       " children running already (at most max_connections, ",
                       options_.max_connections, ", connected or not)"))));
    Finish(fd);
    return;
  }
  if (TemplateCache::IsSandboxed(request)) {
    HandleSandboxedSpawn(connection, request, fds);
    return;
  }
  absl::StatusOr<pid_t> pid = children_.Spawn(request, fds);
  if (!pid.ok()) {
    if (absl::IsInvalidArgument(pid.status())) {
      Reject(fd, pid.status());  // E.g. an unsealed argument memfd.
      return;
    }
    // A well-formed request we could not carry out (no such entry, out of
    // resources, ...): tell the client; not a protocol violation.
    (void)Send(fd, ErrorMessage(pid.status()));
    Finish(fd);
    return;
  }
  connection.stage = Stage::kSettingUp;
  connection.child = *pid;
  Child& child = children_.at(*pid);
  child.connection = fd;
  // A program's verdict is known already (ChildTable::Spawn, exec mode):
  // answer now rather than after another turn of the loop. Otherwise the
  // report pipe wakes the loop (FinishSetup does nothing until then).
  FinishSetup(*pid);
}

void ConnectionTable::FinishSetup(pid_t pid) {
  Child& child = children_.at(pid);
  std::optional<SetupReport> report = children_.ReadSetupReport(pid);
  if (!report.has_value()) return;

  const int fd = child.connection;
  if (fd < 0) return;  // The client left while the child was set up.
  Connection& connection = connections_.at(fd);
  if (!report->result.ok()) {
    wire::ServerMessage message = ErrorMessage(report->result);
    // The step and errno apart too, for clients that act on them.
    message.mutable_error()->set_step(
        ChildStepName(static_cast<ChildStep>(report->failure.step)));
    message.mutable_error()->set_errno_value(report->failure.error);
    (void)Send(fd, message);
    child.connection = -1;
    Finish(fd);
    return;
  }
  wire::ServerMessage reply;
  reply.mutable_spawned()->set_pid(pid);
  const int pidfd = child.pidfd.get();
  if (!Send(fd, reply, {&pidfd, 1}).ok()) {
    Close(fd);  // Not announced: the child is killed (ChildTable::Disown).
    return;
  }
  child.announced = true;
  connection.stage = Stage::kRunning;
}

void ConnectionTable::NotifyExit(Child& child,
                                 const wire::ServerMessage& notice) {
  const int fd = child.connection;
  const bool sent = Send(fd, notice).ok();
  child.connection = -1;
  if (!sent || !notice.has_exited()) {
    Finish(fd);
    return;
  }
  RequestDone(fd);
}

void ConnectionTable::RequestDone(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& connection = it->second;
  if (!connection.keep_alive) {
    Finish(fd);
    return;
  }
  connection.child = 0;  // Its exit was reported: nothing to disown.
  ++connection.served;
  connection.stage = Stage::kAwaitRequest;
  connection.deadline = MonotonicNow() + options_.request_timeout;
}

absl::Time ConnectionTable::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [fd, connection] : connections_) {
    if (AwaitsRequest(connection) || connection.stage == Stage::kClosing) {
      next = std::min(next, connection.deadline);
    }
  }
  return next;
}

namespace {

bool HasPendingInput(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) != 0;
}

}  // namespace

void ConnectionTable::DropIdle() {
  const absl::Time now = MonotonicNow();
  std::vector<int> idle, lingered;
  for (const auto& [fd, connection] : connections_) {
    if (now < connection.deadline) continue;
    if (AwaitsRequest(connection)) idle.push_back(fd);
    if (connection.stage == Stage::kClosing) lingered.push_back(fd);
  }
  for (int fd : lingered) Close(fd);
  for (int fd : idle) {
    if (connections_.at(fd).served > 0) {
      // A kept-alive connection idle between requests: nothing was
      // wrong, the client just has nothing to send. Its EOF tells it.
      // Unless a request came in since the loop last looked: the client's
      // clock for a kept connection starts when it reads its last reply,
      // ours when we sent it, so it may reuse one at our deadline; that
      // request is served (its packet would be thrown away with it).
      if (HasPendingInput(fd)) continue;
      Close(fd);
      continue;
    }
    Reject(fd, absl::DeadlineExceededError(absl::StrCat(
                   "no complete request within ",
                   absl::FormatDuration(options_.request_timeout))));
  }
}

void ConnectionTable::CountRefusal(absl::string_view why) {
  ++rejected_total_;
  last_rejection_ = std::string(why);
}

absl::Status ConnectionTable::Send(int fd, const wire::ServerMessage& message,
                                   absl::Span<const int> fds) {
  absl::Status sent = SendPacket(fd, message.SerializeAsString(), fds);
  if (!sent.ok() && !IsPeerClosed(sent)) {
    Log(absl::StrCat("reply on connection ", fd, " failed: ", sent.ToString()));
  }
  return sent;
}

void ConnectionTable::Reject(int fd, const absl::Status& why) {
  ++rejected_total_;
  last_rejection_ = why.ToString();
  Log(absl::StrCat("closing connection ", fd, ": ", last_rejection_));
  (void)Send(fd, ErrorMessage(why));
  Finish(fd);
}

void ConnectionTable::Finish(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end() || it->second.stage == Stage::kClosing) return;
  Connection& connection = it->second;
  children_.Disown(connection.child, fd);
  connection.child = 0;
  if (lingering_ >= options_.max_lingering) {
    Close(fd);
    return;
  }
  // The client reads the reply, then EOF; its close ends the linger.
  ::shutdown(fd, SHUT_WR);
  connection.stage = Stage::kClosing;
  connection.deadline = MonotonicNow() + kLingerTime;
  ++lingering_;
  Drain(connection);
}

void ConnectionTable::Drain(Connection& connection) {
  Packet unread;
  for (int i = 0; i < 16; ++i) {
    absl::Status received =
        ReceiveUntrustedPacket(connection.socket.get(), absl::InfinitePast(), &unread);
    ReleaseClientFds(unread.fds);
    if (absl::IsDeadlineExceeded(received)) return;  // Nothing more yet.
    // A packet (or a malformed one, its descriptors closed): read away.
    if (received.ok() || absl::IsInvalidArgument(received)) continue;
    Close(connection.socket.get());  // EOF or a reset: done.
    return;
  }
}

void ConnectionTable::Close(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  if (it->second.stage == Stage::kClosing) --lingering_;
  children_.Disown(it->second.child, fd);
  if (options_.templates != nullptr) options_.templates->ForgetConnection(fd);
  // Unread input makes close() reset the connection (ECONNRESET), and the
  // client would lose the error reply just sent; read it away first.
  Packet unread;
  for (int i = 0; i < 16; ++i) {
    const bool read = ReceiveUntrustedPacket(fd, absl::InfinitePast(), &unread).ok();
    ReleaseClientFds(unread.fds);
    if (!read) break;
  }
  events_.Unwatch(fd);
  // What is still queued (past the 16 read away) goes with the socket:
  // its close purges those packets and closes what they carry.
  std::vector<UniqueFd> socket;
  socket.push_back(std::move(it->second.socket));
  connections_.erase(it);
  ReleaseClientFds(socket);
}

void ConnectionTable::Clear() {
  std::vector<UniqueFd> sockets;
  for (auto& [fd, connection] : connections_) {
    events_.Unwatch(fd);
    sockets.push_back(std::move(connection.socket));
  }
  connections_.clear();
  ReleaseClientFds(sockets);
}

void ConnectionTable::ReleaseClientFds(std::vector<UniqueFd>& fds) {
  if (fds.empty()) return;
  if (options_.closer != nullptr) {
    options_.closer->Release(fds);
  } else {
    fds.clear();
  }
}

}  // namespace server_internal
}  // namespace forkserver
