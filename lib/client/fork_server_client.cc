#include "lib/client/fork_server_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "forkserver/listener.h"
#include "lib/registry/program.h"
#include "lib/ipc/seqpacket.h"
#include "lib/client/connection_cache.h"
#include "lib/client/launch_failure.h"
#include "lib/client/server_auth.h"
#include "lib/client/server_launcher.h"
#include "lib/base/standard_fds.h"
#include "lib/base/status_macros.h"
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

// ForkServerOptions::runtime_dir, else $FORKSERVER_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR (when the socket path fits in sun_path there), else /tmp.
std::string RuntimeDir(const ForkServerOptions& options) {
  if (!options.runtime_dir.empty()) return options.runtime_dir;
  const char* env = std::getenv("FORKSERVER_RUNTIME_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/' &&
      CheckSocketPath(absl::StrCat(xdg, "/forkserver-XXXXXX/socket")).ok()) {
    return xdg;
  }
  return "/tmp";
}

// Forgets a dead (or inherited) server. Call with the lock held.
void ForgetServer(ClientState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(client_mutex) {
  if (state.server == nullptr) return;
  // Its idle connections lead nowhere now (and a forked child's copies
  // are its parent's).
  internal::DropIdleConnections(state.server->socket_path());
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
  launch.warm_workers = std::clamp(state.options.warm_workers, 0, 64);
  launch.bind_now = state.options.bind_symbols_at_launch;
  ASSIGN_OR_RETURN(state.server, LaunchedServer::Launch(launch));
  state.owner = ::getpid();
  return absl::OkStatus();
}

// Connects to the server at `path` after checking its directory and
// socket, and checks who answered (lib/client/server_auth.h) before anyone
// sends a byte. `expected_pid`: the server we launched, or 0.
absl::StatusOr<UniqueFd> ConnectSocket(const std::string& path,
                                       absl::Time deadline,
                                       pid_t expected_pid) {
  ASSIGN_OR_RETURN(ServerSocketPath checked, OpenServerSocketPath(path));
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
  // With a standard descriptor closed the socket would take its number
  // and could be handed to a program as its stdin or stdout.
  RETURN_IF_ERROR(MoveAboveStandardFds(socket));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // Through the checked directory's descriptor, not through `path`.
  std::memcpy(address.sun_path, checked.connect_path.data(),
              std::min(checked.connect_path.size(),
                       sizeof(address.sun_path) - 1));
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
  RETURN_IF_ERROR(CheckServerPeer(socket.get(), expected_pid));
  // Blocking from here on: sends of our small packets never wait long,
  // and every receive has its deadline (ReceivePacket).
  ::fcntl(socket.get(), F_SETFL, 0);
  return socket;
}

absl::Status SendHello(int socket, bool keep_alive) {
  wire::ClientMessage hello;
  hello.mutable_hello()->set_version(wire::PROTOCOL_VERSION_1);
  hello.mutable_hello()->set_keep_alive(keep_alive);
  return SendPacket(socket, hello.SerializeAsString());
}

absl::Status ServerError(const wire::Error& error) {
  return WithLaunchFailure(
      absl::Status(static_cast<absl::StatusCode>(error.code()),
                   absl::StrCat("fork server: ", error.message())),
      error.step(), error.errno_value());
}

// Our hello found the connection closed: the server may have refused us
// (too many connections, another uid) before it arrived, and its reason
// is then still to be read. That error, or OK when there is none.
absl::Status PendingRefusal(int socket) {
  Packet packet;
  wire::ServerMessage message;
  if (ReceivePacket(socket, absl::InfinitePast(), &packet).ok() &&
      message.ParseFromString(packet.bytes) && message.has_error()) {
    return ServerError(message.error());
  }
  return absl::OkStatus();
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
    int keep;
    {
      absl::MutexLock lock(&client_mutex);
      ClientState& state = State();
      RETURN_IF_ERROR(EnsureServer(state));
      path = state.server->socket_path();
      pid = state.server->pid();
      timeout = state.options.request_timeout;
      keep = std::clamp(state.options.idle_connections, 0, kMaxIdlePerServer);
    }
    // Turned off since some were kept: they go now, not at some later
    // sweep (a lowered, non-zero limit trims as they are released).
    if (keep == 0) internal::DropIdleConnections(path);
    if (keep > 0) {
      // Quiet (no EOF: the server is alive and has not closed it) and
      // young enough; the peer was checked when it was made. A server
      // that dies from here on fails the request with UNAVAILABLE, as one
      // in flight.
      std::optional<IdleConnection> idle = TakeIdleConnection(path);
      if (idle.has_value() && idle->server_pid == pid) {
        ServerConnection reused = ServerConnection::Reused(path, std::move(*idle));
        reused.set_max_idle(keep);
        return reused;
      }
    }
    const absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<UniqueFd> socket = ConnectSocket(path, deadline, pid);
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
    // Without kept connections (idle_connections 0), one per request:
    // nothing of a joined Process or Pool stays open.
    absl::Status hello = SendHello(socket->get(), /*keep_alive=*/keep > 0);
    if (IsPeerClosed(hello)) {
      RETURN_IF_ERROR(PendingRefusal(socket->get()));
      return absl::UnavailableError(DescribeServerLoss(pid));
    }
    RETURN_IF_ERROR(hello);
    ServerConnection fresh(std::move(*socket), pid, keep > 0 ? path : "");
    fresh.set_max_idle(keep);
    return fresh;
  }
}

namespace {

absl::StatusOr<ServerConnection> ConnectFreshToSocket(
    const std::string& socket_path, bool keep_alive) {
  RETURN_IF_ERROR(CheckSocketPath(socket_path));
  const absl::Time deadline =
      absl::Now() + GetForkServerOptions().request_timeout;
  ASSIGN_OR_RETURN(UniqueFd socket,
                   ConnectSocket(socket_path, deadline, /*expected_pid=*/0));
  absl::Status hello = SendHello(socket.get(), keep_alive);
  if (IsPeerClosed(hello)) RETURN_IF_ERROR(PendingRefusal(socket.get()));
  RETURN_IF_ERROR(hello);
  return ServerConnection(std::move(socket), /*server_pid=*/0,
                          keep_alive ? socket_path : "");
}

}  // namespace

absl::StatusOr<ServerConnection> ConnectToSocket(const std::string& socket_path) {
  return ConnectFreshToSocket(socket_path, /*keep_alive=*/false);
}

absl::StatusOr<ServerConnection> ReuseOrConnectToSocket(
    const std::string& socket_path) {
  if (std::optional<IdleConnection> idle = TakeIdleConnection(socket_path)) {
    return ServerConnection::Reused(socket_path, std::move(*idle));
  }
  return ConnectFreshToSocket(socket_path, /*keep_alive=*/true);
}

ServerConnection ServerConnection::Reused(std::string reuse_key,
                                          IdleConnection idle) {
  ServerConnection connection(std::move(idle.socket), idle.server_pid,
                              std::move(reuse_key));
  connection.hello_pending_ = false;
  connection.reusable_ = true;
  connection.idle_limit_ = idle.idle_limit;
  return connection;
}

void ServerConnection::Release() {
  if (!socket_.valid()) return;
  if (!reusable_ || reuse_key_.empty()) {
    socket_.reset();
    return;
  }
  KeepIdleConnection(reuse_key_,
                     IdleConnection{std::move(socket_), server_pid_, idle_limit_},
                     max_idle_);
}

absl::StatusOr<ServerReply> ServerConnection::Receive(absl::Time deadline) {
  Packet packet;
  absl::Status received = ReceiveFromServer(socket_.get(), deadline, &packet);
  if (IsPeerClosed(received)) {
    // A reset is reported before the packets queued ahead of it: a server
    // that refused us and closed with our hello unread left its reason.
    RETURN_IF_ERROR(PendingRefusal(socket_.get()));
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
  for (UniqueFd& fd : reply.fds) RETURN_IF_ERROR(MoveAboveStandardFds(fd));
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
  if (hello_pending_) {
    ASSIGN_OR_RETURN(ServerReply hello, Receive(deadline));
    if (!hello.message.has_hello() ||
        hello.message.hello().version() != wire::PROTOCOL_VERSION_1) {
      return absl::InternalError("unexpected hello reply from the fork server");
    }
    hello_pending_ = false;
    if (server_pid_ == 0) server_pid_ = hello.message.hello().server_pid();
    // Half the server's idle timeout: a kept connection is never reused
    // so late that the server closes it under the request.
    const int64_t idle_ms = hello.message.hello().idle_timeout_ms();
    reusable_ = !reuse_key_.empty() && hello.message.hello().keep_alive() &&
                idle_ms > 0;
    idle_limit_ = absl::Milliseconds(idle_ms) / 2;
  }
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
  connection.Release();
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
  info.accepted_total = status.accepted_total();
  info.rejected_total = status.rejected_total();
  info.last_rejection = status.last_rejection();
  info.warm_target = status.warm_target();
  info.warm_ready = status.warm_ready();
  info.warm_hits = status.warm_hits();
  info.warm_idle_deaths = status.warm_idle_deaths();
  info.warm_pids.assign(status.warm_pids().begin(), status.warm_pids().end());
  return info;
}

void CloseIdleConnections() { internal::DropAllIdleConnections(); }

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
