#include "lib/fork_server_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <memory>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "forkserver/listener.h"
#include "lib/init.h"
#include "lib/seqpacket.h"
#include "lib/server_launcher.h"
#include "lib/status_macros.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace {

struct ClientState {
  ForkServerOptions options;
  // The process that launched `server`; a forked child starts afresh.
  pid_t owner = 0;
  std::unique_ptr<LaunchedServer> server;
  // How the previous server ended, for requests that were in flight.
  pid_t lost_pid = 0;
  std::string lost_description;
};

ABSL_CONST_INIT absl::Mutex client_mutex(absl::kConstInit);
std::atomic<int> pending_requests{0};

ClientState& State() ABSL_EXCLUSIVE_LOCKS_REQUIRED(client_mutex) {
  static ClientState* state = new ClientState;  // Lives for the process.
  return *state;
}

std::string RuntimeDir(const ForkServerOptions& options) {
  if (!options.runtime_dir.empty()) return options.runtime_dir;
  const char* env = std::getenv("FORKSERVER_RUNTIME_DIR");
  return env != nullptr && env[0] != '\0' ? env : "/tmp";
}

// Forgets a dead (or inherited) server. Call with the lock held.
void ForgetServer(ClientState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(client_mutex) {
  if (state.server == nullptr) return;
  if (state.owner != ::getpid()) {
    state.server->Abandon();
  } else {
    state.lost_pid = state.server->pid();
    state.lost_description = state.server->DescribeExit();
  }
  state.server.reset();
}

// The live server, launching one when there is none (or it died).
absl::Status EnsureServer(ClientState& state)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(client_mutex) {
  if (state.server != nullptr &&
      (state.owner != ::getpid() || state.server->Exited())) {
    ForgetServer(state);
  }
  if (state.server != nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(internal::CheckInitialized("start the fork server"));
  LaunchOptions launch;
  launch.runtime_dir = RuntimeDir(state.options);
  launch.start_timeout = state.options.start_timeout;
  launch.application_args = MainArgs();
  ASSIGN_OR_RETURN(state.server, LaunchedServer::Launch(launch));
  state.owner = ::getpid();
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ConnectSocket(const std::string& path,
                                       absl::Time deadline) {
  // Non-blocking while connecting: with the listen backlog full, a
  // blocking connect() would wait for ever instead of saying EAGAIN.
  UniqueFd socket(
      ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket) {
    if (errno == EMFILE || errno == ENFILE) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "socket() for a fork server connection: ", std::strerror(errno)));
    }
    return ErrnoError("socket(AF_UNIX, SOCK_SEQPACKET)");
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(),
              std::min(path.size(), sizeof(address.sun_path) - 1));
  while (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address),
                   sizeof(address)) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      // The listen backlog is full: the server is busy (or stuck), not dead.
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "fork server at ", path, " is not accepting connections (its "
            "listen backlog stayed full)"));
      }
      absl::SleepFor(absl::Milliseconds(1));
      continue;
    }
    if (errno == ECONNREFUSED || errno == ENOENT) {
      return absl::UnavailableError(
          absl::StrCat("connect(", path, "): ", std::strerror(errno)));
    }
    return ErrnoError(absl::StrCat("connect(", path, ")"));
  }
  // Blocking from here on: sends of our small packets never wait long,
  // and every receive has its deadline (ReceivePacket).
  ::fcntl(socket.get(), F_SETFL, 0);
  return socket;
}

absl::Status SendHello(int socket) {
  wire::ClientMessage hello;
  hello.mutable_hello()->set_version(wire::PROTOCOL_VERSION_1);
  return SendPacket(socket, hello.SerializeAsString());
}

absl::Status ServerError(const wire::Error& error) {
  return absl::Status(static_cast<absl::StatusCode>(error.code()),
                      absl::StrCat("fork server: ", error.message()));
}

}  // namespace

void SetForkServerOptions(const ForkServerOptions& options) {
  absl::MutexLock lock(&client_mutex);
  State().options = options;
}

ForkServerOptions GetForkServerOptions() {
  absl::MutexLock lock(&client_mutex);
  return State().options;
}

namespace internal {

int PendingServerRequests() { return pending_requests.load(); }

absl::Status ReceiveFromServer(int socket, absl::Time deadline,
                               Packet* packet) {
  ++pending_requests;
  absl::Status received = ReceivePacket(socket, deadline, packet);
  --pending_requests;
  return received;
}

std::string DescribeServerLoss(pid_t server_pid) {
  if (server_pid == 0) return "the fork server went away";
  absl::MutexLock lock(&client_mutex);
  ClientState& state = State();
  if (state.server != nullptr && state.server->pid() == server_pid &&
      state.owner == ::getpid()) {
    // The connection just dropped; give the exit a moment to be visible.
    state.server->WaitForExit(absl::Now() + absl::Milliseconds(100));
    return absl::StrCat("fork server (pid ", server_pid,
                        ") went away: ", state.server->DescribeExit());
  }
  if (state.lost_pid == server_pid) {
    return absl::StrCat("fork server (pid ", server_pid, ") went away: ",
                        state.lost_description);
  }
  return absl::StrCat("fork server (pid ", server_pid, ") went away");
}

absl::StatusOr<ServerConnection> ConnectToForkServer() {
  for (int attempt = 0;; ++attempt) {
    std::string path;
    pid_t pid;
    absl::Duration timeout;
    {
      absl::MutexLock lock(&client_mutex);
      ClientState& state = State();
      RETURN_IF_ERROR(EnsureServer(state));
      path = state.server->socket_path();
      pid = state.server->pid();
      timeout = state.options.request_timeout;
    }
    const absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<UniqueFd> socket = ConnectSocket(path, deadline);
    if (absl::IsUnavailable(socket.status()) && attempt == 0) {
      // Nobody listens: the server died (or is shutting down). Retire it,
      // unless another thread already did, and launch a new one.
      absl::MutexLock lock(&client_mutex);
      ClientState& state = State();
      if (state.server != nullptr && state.server->pid() == pid) {
        state.server->WaitForExit(absl::Now() + absl::Milliseconds(100));
        ForgetServer(state);  // Kills it if it still runs.
      }
      continue;
    }
    if (!socket.ok()) return socket.status();
    absl::Status hello = SendHello(socket->get());
    if (IsPeerClosed(hello)) {
      return absl::UnavailableError(DescribeServerLoss(pid));
    }
    RETURN_IF_ERROR(hello);
    return ServerConnection(std::move(*socket), pid);
  }
}

absl::StatusOr<ServerConnection> ConnectToSocket(const std::string& socket_path) {
  RETURN_IF_ERROR(CheckSocketPath(socket_path));
  const absl::Time deadline =
      absl::Now() + GetForkServerOptions().request_timeout;
  ASSIGN_OR_RETURN(UniqueFd socket, ConnectSocket(socket_path, deadline));
  RETURN_IF_ERROR(SendHello(socket.get()));
  return ServerConnection(std::move(socket), /*server_pid=*/0);
}

absl::StatusOr<ServerReply> ServerConnection::Receive(absl::Time deadline) {
  Packet packet;
  absl::Status received = ReceiveFromServer(socket_.get(), deadline, &packet);
  if (IsPeerClosed(received)) {
    return absl::UnavailableError(DescribeServerLoss(server_pid_));
  }
  if (absl::IsDeadlineExceeded(received)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "fork server (pid ", server_pid_, ") did not answer in time"));
  }
  RETURN_IF_ERROR(received);
  ServerReply reply;
  if (!reply.message.ParseFromString(packet.bytes)) {
    return absl::InternalError("undecodable message from the fork server");
  }
  if (reply.message.has_error()) return ServerError(reply.message.error());
  reply.fds = std::move(packet.fds);
  return reply;
}

absl::StatusOr<ServerReply> ServerConnection::Request(
    const wire::ClientMessage& request, absl::Span<const int> fds) {
  const absl::Time deadline =
      absl::Now() + GetForkServerOptions().request_timeout;
  absl::Status sent =
      SendPacket(socket_.get(), request.SerializeAsString(), fds);
  // A server that refused the hello has closed the connection: its reason
  // is still to be read, so a failed send is not the end.
  if (!sent.ok() && !IsPeerClosed(sent)) return sent;
  ASSIGN_OR_RETURN(ServerReply hello, Receive(deadline));
  if (!hello.message.has_hello() ||
      hello.message.hello().version() != wire::PROTOCOL_VERSION_1) {
    return absl::InternalError("unexpected hello reply from the fork server");
  }
  if (server_pid_ == 0) server_pid_ = hello.message.hello().server_pid();
  return Receive(deadline);
}

}  // namespace internal

absl::StatusOr<ForkServerInfo> GetForkServerInfo() {
  ASSIGN_OR_RETURN(internal::ServerConnection connection,
                   internal::ConnectToForkServer());
  wire::ClientMessage request;
  request.mutable_status();
  ASSIGN_OR_RETURN(internal::ServerReply reply, connection.Request(request));
  if (!reply.message.has_status()) {
    return absl::InternalError("unexpected status reply from the fork server");
  }
  const wire::StatusReply& status = reply.message.status();
  ForkServerInfo info;
  info.pid = status.server_pid();
  {
    absl::MutexLock lock(&client_mutex);
    if (State().server != nullptr) info.socket_path = State().server->socket_path();
  }
  info.uptime = absl::Microseconds(status.uptime_usec());
  info.preload_time = absl::Microseconds(status.preload_usec());
  info.live_children = status.live_children();
  info.spawned_total = status.spawned_total();
  info.open_connections = status.open_connections();
  info.open_fds = status.open_fds();
  info.rejected_total = status.rejected_total();
  info.last_rejection = status.last_rejection();
  return info;
}

absl::Status StopForkServer(absl::Duration timeout) {
  absl::MutexLock lock(&client_mutex);
  ClientState& state = State();
  if (state.server == nullptr || state.owner != ::getpid()) {
    return absl::OkStatus();
  }
  state.server->RequestShutdown();
  const bool exited = state.server->WaitForExit(absl::Now() + timeout);
  const pid_t pid = state.server->pid();
  ForgetServer(state);
  if (!exited) {
    return absl::DeadlineExceededError(absl::StrCat(
        "fork server (pid ", pid, ") did not exit within ",
        absl::FormatDuration(timeout), "; killed it"));
  }
  return absl::OkStatus();
}

}  // namespace forkserver
