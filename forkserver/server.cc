#include "forkserver/server.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "forkserver/acceptor.h"
#include "forkserver/children.h"
#include "forkserver/connection.h"
#include "forkserver/event_set.h"
#include "forkserver/fd_budget.h"
#include "forkserver/reaper.h"
#include "forkserver/server_log.h"
#include "forkserver/shutdown.h"
#include "forkserver/templates.h"
#include "absl/strings/str_cat.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace server_internal {
namespace {

constexpr absl::Duration kLogRetry = absl::Milliseconds(50);

// The loop: owns the parts and dispatches epoll events to them.
class Server {
 public:
  explicit Server(ServerConfig config)
      : config_(std::move(config)),
        children_(events_, config_.warm_workers),
        templates_(events_, children_),
        connections_(ConnectionOptionsOf(config_, &templates_, &closer_), events_,
                     children_),
        acceptor_(config_.listener, connections_, events_),
        shutdown_(ShutdownOptionsOf(config_, &closer_), events_, children_) {}

  absl::Status Run();

 private:
  static ConnectionOptions ConnectionOptionsOf(const ServerConfig& config,
                                               TemplateCache* templates,
                                               ClientFdCloser* closer) {
    ConnectionOptions options;
    options.templates = templates;
    options.closer = closer;
    options.request_timeout = config.request_timeout;
    options.max_connections = config.max_connections;
    options.max_lingering = std::min(kMaxLingering, config.max_connections);
    options.started = MonotonicNow();  // Deadlines here are MonotonicNow()'s.
    options.preload_duration = config.preload_duration;
    return options;
  }
  static ShutdownOptions ShutdownOptionsOf(ServerConfig& config, ClientFdCloser* closer) {
    ShutdownOptions options;
    options.listener = &config.listener;
    options.closer = closer;
    options.socket_path = config.socket_path;
    options.remove_socket_directory = config.remove_socket_directory;
    options.has_owner = static_cast<bool>(config.alive);
    options.grace = config.shutdown_grace;
    options.kill_wait = config.shutdown_kill_wait;
    return options;
  }

  absl::Status SetUp();
  void Dispatch(const epoll_event& event);
  void OnSignals();
  int NextTimeoutMillis() const;
  bool WarmRefillDue() const {
    return !shutdown_.started() && children_.NextWarmRefill() <= MonotonicNow();
  }

  ServerConfig config_;
  EventSet events_;
  UniqueFd signals_;
  ChildTable children_;
  TemplateCache templates_;
  ClientFdCloser closer_;
  ConnectionTable connections_;
  Acceptor acceptor_;
  Shutdown shutdown_;
};

absl::Status Server::SetUp() {
  // A client that vanishes mid-send must not kill us; sends also use
  // MSG_NOSIGNAL, this covers the rest.
  ::signal(SIGPIPE, SIG_IGN);

  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
  if (::sigprocmask(SIG_BLOCK, &handled, nullptr) != 0) {
    return ErrnoError("sigprocmask");
  }
  signals_.reset(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) return ErrnoError("signalfd");
  RETURN_IF_ERROR(events_.Open());
  acceptor_.OpenReserve();

  events_.Watch(config_.listener.get(), EventSource::kListener);
  events_.Watch(signals_.get(), EventSource::kSignals);
  if (config_.alive) events_.Watch(config_.alive.get(), EventSource::kAlive);
  // Orphaned descendants of our children come to us to be reaped, not to
  // init (or whoever is the subreaper above us).
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    Log(absl::StrCat("prctl(PR_SET_CHILD_SUBREAPER): ", std::strerror(errno)));
  }
  // Children may have exited before the signalfd existed. None is ours
  // yet: whatever this reaps was forked by whoever exec'd us.
  if (int strangers = ReapChildren(children_, connections_); strangers > 0) {
    Log(absl::StrCat("reaped ", strangers,
                     " exited children at start-up that this server did not "
                     "fork (left by the process that exec'd it)"));
  }
  // After the start-up reaping, which would count it if it died at once.
  if (absl::Status started = closer_.Start(); !started.ok()) {
    Log(absl::StrCat("no descriptor closer (", started.ToString(),
                     "); client descriptors are closed in the server"));
  }
  return absl::OkStatus();
}

absl::Status Server::Run() {
  RETURN_IF_ERROR(SetUp());
  std::vector<epoll_event> events(64);
  while (!shutdown_.Complete()) {
    const bool refill = WarmRefillDue();
    int timeout = NextTimeoutMillis();
    // A warm child is forked only when nothing else is ready: a request
    // or a reply never waits for it. A setup report on its way (a warm
    // child being specialised) is waited for first, up to 1 ms.
    if (refill) {
      timeout = !children_.SetupsPending() ? 0
                : timeout < 0              ? 1
                                           : std::min(timeout, 1);
    }
    int ready = events_.Wait(events.data(), static_cast<int>(events.size()),
                             timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("epoll_wait");
    }
    if (ready == 0 && refill) children_.RefillWarm();
    for (int i = 0; i < ready; ++i) Dispatch(events[i]);
    connections_.DropIdle();
    templates_.DropLate(connections_);
    if (!shutdown_.started() && MonotonicNow() >= acceptor_.resume_at()) {
      acceptor_.Resume();
    }
    if (LogPending()) FlushLog();
    if (shutdown_.started() && MonotonicNow() >= shutdown_.deadline() &&
        shutdown_.OnDeadline()) {
      break;
    }
  }
  connections_.Clear();
  templates_.Clear();
  return absl::OkStatus();
}

void Server::Dispatch(const epoll_event& event) {
  const int fd = EventSet::FdOf(event);
  switch (EventSet::SourceOf(event)) {
    case EventSource::kListener:
      if (!shutdown_.started()) acceptor_.OnReadable();
      break;
    case EventSource::kAlive:
      events_.Unwatch(fd);
      shutdown_.Begin(kOwnerWentAway);
      break;
    case EventSource::kSignals:
      OnSignals();
      break;
    case EventSource::kConnection:
      // An earlier event in this batch may have closed it.
      if (connections_.Contains(fd)) connections_.OnReadable(fd);
      break;
    case EventSource::kReport:
      if (std::optional<pid_t> pid = children_.PendingReport(fd)) {
        connections_.FinishSetup(*pid);
      }
      break;
    case EventSource::kTemplate:
      if (templates_.Owns(fd)) templates_.OnReadable(fd, connections_);
      break;
  }
}

void Server::OnSignals() {
  signalfd_siginfo info;
  while (::read(signals_.get(), &info, sizeof(info)) ==
         static_cast<ssize_t>(sizeof(info))) {
    switch (info.ssi_signo) {
      case SIGCHLD:
        ReapChildren(children_, connections_);
        break;
      case SIGTERM:
        shutdown_.Begin("SIGTERM");
        break;
      case SIGINT:
      case SIGHUP:
        if (config_.shutdown_on_interrupt) {
          shutdown_.Begin(info.ssi_signo == SIGINT ? "SIGINT" : "SIGHUP");
        }
        break;
    }
  }
}

int Server::NextTimeoutMillis() const {
  absl::Time next = std::min({shutdown_.deadline(), connections_.NextDeadline(),
                              templates_.NextDeadline()});
  if (!shutdown_.started()) {
    next = std::min(next, acceptor_.resume_at());
    // A warm refill backing off; one due now is the loop's to time.
    if (const absl::Time refill = children_.NextWarmRefill();
        refill > MonotonicNow()) {
      next = std::min(next, refill);
    }
  }
  // A backed-up log is retried soon (it is never waited for).
  if (LogPending()) next = std::min(next, MonotonicNow() + kLogRetry);
  if (next == absl::InfiniteFuture()) return -1;
  const int64_t millis = absl::ToInt64Milliseconds(next - MonotonicNow()) + 1;
  return static_cast<int>(std::clamp<int64_t>(millis, 0, 60'000));
}

}  // namespace
}  // namespace server_internal

absl::Status RunForkServer(ServerConfig config) {
  config.warm_workers = std::clamp(config.warm_workers, 0, kMaxWarmWorkers);
  const int64_t fd_limit = server_internal::RaiseFdLimit();
  const int fit =
      server_internal::ConnectionsThatFit(fd_limit, config.warm_workers);
  if (config.max_connections > fit) {
    server_internal::Log(absl::StrCat(
        "serving at most ", fit, " connections, not ", config.max_connections,
        ": RLIMIT_NOFILE is ", fd_limit, " (forkserver/fd_budget.h)"));
    config.max_connections = fit;
  }
  server_internal::Server server(std::move(config));
  return server.Run();
}

}  // namespace forkserver
