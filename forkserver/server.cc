#include "forkserver/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "forkserver/child_setup.h"
#include "forkserver/listener.h"
#include "forkserver/request_validation.h"
#include "forkserver/spawner.h"
#include "lib/entry_runner.h"
#include "lib/monotonic_clock.h"
#include "lib/registry.h"
#include "lib/seqpacket.h"
#include "lib/status_macros.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace {

void Log(absl::string_view message) {
  std::fprintf(stderr, "forkserver[%d]: %.*s\n", ::getpid(),
               static_cast<int>(message.size()), message.data());
}

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(
      ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

int CountOpenFds() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    --count;  // The directory stream's own descriptor.
  }
  return count;
}

wire::ServerMessage ErrorMessage(const absl::Status& status) {
  wire::ServerMessage message;
  message.mutable_error()->set_code(static_cast<int>(status.code()));
  message.mutable_error()->set_message(std::string(status.message()));
  return message;
}

// A sealed memfd holding a large entry argument, mapped read-only. The
// mapping is inherited by the child, which reads the argument from it.
class MappedArgument {
 public:
  static absl::StatusOr<MappedArgument> Map(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError("fstat of the argument fd");
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError("argument fd is not a memfd");
    }
    const int seals = ::fcntl(fd, F_GET_SEALS);
    constexpr int kSealFutureWrite = 0x0010;  // F_SEAL_FUTURE_WRITE.
    if (seals < 0 || !(seals & F_SEAL_SHRINK) ||
        !(seals & (F_SEAL_WRITE | kSealFutureWrite))) {
      // Unsealed, the sender could shrink it under the child (SIGBUS).
      return absl::InvalidArgumentError(
          "argument fd is not a memfd sealed against writes and shrinking");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size > kMaxMemfdArgBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("argument of ", size, " bytes exceeds the limit of ",
                       kMaxMemfdArgBytes));
    }
    MappedArgument mapped;
    if (size == 0) return mapped;
    void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) return ErrnoError("mmap of the argument fd");
    mapped.address_ = address;
    mapped.size_ = size;
    return mapped;
  }

  MappedArgument() = default;
  MappedArgument(MappedArgument&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  MappedArgument& operator=(MappedArgument&& other) noexcept {
    if (this != &other) {
      Unmap();
      address_ = std::exchange(other.address_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~MappedArgument() { Unmap(); }

  absl::string_view view() const {
    return {static_cast<const char*>(address_), size_};
  }

 private:
  void Unmap() {
    if (address_ != nullptr) ::munmap(address_, size_);
    address_ = nullptr;
  }

  void* address_ = nullptr;
  size_t size_ = 0;
};

class Server {
 public:
  explicit Server(ServerConfig config)
      : config_(std::move(config)), started_(MonotonicNow()) {}

  absl::Status Run();

 private:
  // What an epoll event is about; packed with the fd into epoll_data.u64.
  enum class Source : uint32_t {
    kListener,
    kAlive,
    kSignals,
    kConnection,
    kReport,
  };

  enum class Stage { kAwaitHello, kAwaitRequest, kSettingUp, kRunning };

  struct Connection {
    UniqueFd socket;
    Stage stage = Stage::kAwaitHello;
    pid_t child = 0;
    // Until the request arrives; a connection idle past it is dropped.
    absl::Time deadline;
  };

  struct Child {
    UniqueFd pidfd;
    // Read end of the setup report, while setup is pending, and what it
    // delivered so far.
    UniqueFd report;
    std::string report_bytes;
    // The connection to report to; -1 once it is gone.
    int connection = -1;
    bool kill_on_disconnect = false;
    bool survive_server = false;
  };

  absl::Status SetUp();
  void Watch(int fd, Source source);
  void Unwatch(int fd);

  void OnListenerReadable();
  void AcceptOne(UniqueFd socket);
  void OnConnectionReadable(int fd);
  void OnReportReadable(int fd);
  void OnSignals();

  void HandleHello(Connection& connection, const wire::Hello& hello,
                   size_t fd_count);
  void HandleSpawn(Connection& connection, const wire::SpawnRequest& request,
                   std::vector<UniqueFd> fds);
  void HandleStatus(Connection& connection);
  absl::StatusOr<pid_t> Spawn(const wire::SpawnRequest& request,
                              std::vector<UniqueFd>& fds);
  void FinishSetup(pid_t pid);
  void ReapChildren();

  // Closes the connection with an error reply, logs and counts why.
  void Reject(int fd, const absl::Status& why);
  // Closes the connection; a child it owns loses its reporter (and dies if
  // it was kill-on-disconnect and still running).
  void CloseConnection(int fd);
  absl::Status Send(int fd, const wire::ServerMessage& message,
                    absl::Span<const int> fds = {});

  void BeginShutdown(absl::string_view reason);
  bool ShutdownComplete() const;
  void KillRemainingChildren();
  int NextTimeoutMillis() const;
  void DropIdleConnections();

  ServerConfig config_;
  const absl::Time started_;  // Deadlines here are MonotonicNow()'s.
  UniqueFd epoll_;
  UniqueFd signals_;
  // Held open so that when the descriptor table is full one can be freed to
  // accept (and refuse) a connection instead of spinning on EMFILE.
  UniqueFd reserve_fd_;

  absl::flat_hash_map<int, Connection> connections_;
  absl::flat_hash_map<pid_t, Child> children_;
  absl::flat_hash_map<int, pid_t> pending_reports_;

  int64_t spawned_total_ = 0;
  int64_t rejected_total_ = 0;
  std::string last_rejection_;

  bool shutting_down_ = false;
  absl::Time shutdown_deadline_ = absl::InfiniteFuture();
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
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return ErrnoError("epoll_create1");
  reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));

  Watch(config_.listener.get(), Source::kListener);
  Watch(signals_.get(), Source::kSignals);
  if (config_.alive) Watch(config_.alive.get(), Source::kAlive);
  // Children may have exited before the signalfd existed.
  ReapChildren();
  return absl::OkStatus();
}

void Server::Watch(int fd, Source source) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = (static_cast<uint64_t>(source) << 32) |
                   static_cast<uint32_t>(fd);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    Log(absl::StrCat("epoll_ctl(ADD, ", fd, "): ", std::strerror(errno)));
  }
}

void Server::Unwatch(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

absl::Status Server::Run() {
  RETURN_IF_ERROR(SetUp());
  std::vector<epoll_event> events(64);
  while (!(shutting_down_ && ShutdownComplete())) {
    int ready = ::epoll_wait(epoll_.get(), events.data(),
                             static_cast<int>(events.size()),
                             NextTimeoutMillis());
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("epoll_wait");
    }
    for (int i = 0; i < ready; ++i) {
      const Source source = static_cast<Source>(events[i].data.u64 >> 32);
      const int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
      switch (source) {
        case Source::kListener:
          if (!shutting_down_) OnListenerReadable();
          break;
        case Source::kAlive:
          Unwatch(fd);
          BeginShutdown("its owner went away (alive pipe closed)");
          break;
        case Source::kSignals:
          OnSignals();
          break;
        case Source::kConnection:
          // An earlier event in this batch may have closed it.
          if (connections_.contains(fd)) OnConnectionReadable(fd);
          break;
        case Source::kReport:
          if (pending_reports_.contains(fd)) OnReportReadable(fd);
          break;
      }
    }
    DropIdleConnections();
    if (shutting_down_ && MonotonicNow() >= shutdown_deadline_) {
      KillRemainingChildren();
      break;
    }
  }
  connections_.clear();
  return absl::OkStatus();
}

int Server::NextTimeoutMillis() const {
  absl::Time next = shutdown_deadline_;
  for (const auto& [fd, connection] : connections_) {
    if (connection.stage == Stage::kAwaitHello ||
        connection.stage == Stage::kAwaitRequest) {
      next = std::min(next, connection.deadline);
    }
  }
  if (next == absl::InfiniteFuture()) return -1;
  const int64_t millis = absl::ToInt64Milliseconds(next - MonotonicNow()) + 1;
  return static_cast<int>(std::clamp<int64_t>(millis, 0, 60'000));
}

void Server::DropIdleConnections() {
  const absl::Time now = MonotonicNow();
  std::vector<int> idle;
  for (const auto& [fd, connection] : connections_) {
    if ((connection.stage == Stage::kAwaitHello ||
         connection.stage == Stage::kAwaitRequest) &&
        now >= connection.deadline) {
      idle.push_back(fd);
    }
  }
  for (int fd : idle) {
    Reject(fd, absl::DeadlineExceededError(absl::StrCat(
                   "no complete request within ",
                   absl::FormatDuration(config_.request_timeout))));
  }
}

void Server::OnListenerReadable() {
  while (true) {
    UniqueFd socket(::accept4(config_.listener.get(), nullptr, nullptr,
                              SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (socket) {
      AcceptOne(std::move(socket));
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno == EMFILE || errno == ENFILE) && reserve_fd_) {
      // Free the reserve, take one connection, refuse it, take the reserve
      // back: a pending connection would otherwise keep the listener
      // readable for ever. Then back to epoll, not round this loop:
      // accept4 reports EMFILE even when nobody is waiting, and looping on
      // that would spin for ever.
      reserve_fd_.reset();
      UniqueFd refused(::accept4(config_.listener.get(), nullptr, nullptr,
                                 SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (refused) {
        wire::ServerMessage message = ErrorMessage(absl::ResourceExhaustedError(
            "fork server is out of file descriptors"));
        (void)SendPacket(refused.get(), message.SerializeAsString());
        ++rejected_total_;
        last_rejection_ = "out of file descriptors";
      }
      refused.reset();
      reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      return;
    }
    if (errno != EAGAIN) {
      Log(absl::StrCat("accept4: ", std::strerror(errno)));
    }
    return;
  }
}

void Server::AcceptOne(UniqueFd socket) {
  const int fd = socket.get();
  Connection& connection = connections_[fd];
  connection.socket = std::move(socket);
  connection.deadline = MonotonicNow() + config_.request_timeout;
  Watch(fd, Source::kConnection);
  if (absl::Status peer = CheckPeerUid(fd, ::geteuid()); !peer.ok()) {
    Reject(fd, peer);
    return;
  }
  if (connections_.size() > static_cast<size_t>(config_.max_connections)) {
    Reject(fd, absl::ResourceExhaustedError(absl::StrCat(
                   "fork server has ", config_.max_connections,
                   " connections open already")));
  }
}

void Server::OnConnectionReadable(int fd) {
  Connection& connection = connections_.at(fd);
  Packet packet;
  absl::Status received = ReceivePacket(fd, absl::InfinitePast(), &packet);
  if (absl::IsDeadlineExceeded(received)) return;  // Spurious wake-up.
  if (!received.ok()) {
    if (IsPeerClosed(received)) {
      CloseConnection(fd);  // The client went away; nothing to log.
    } else {
      Reject(fd, received);
    }
    return;
  }
  if (connection.stage == Stage::kSettingUp ||
      connection.stage == Stage::kRunning) {
    Reject(fd, absl::InvalidArgumentError(
                   "unexpected message while a spawned child runs"));
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
  switch (message->msg_case()) {
    case wire::ClientMessage::kSpawn:
      HandleSpawn(connection, message->spawn(), std::move(packet.fds));
      return;
    case wire::ClientMessage::kStatus:
      if (!packet.fds.empty()) {
        Reject(fd, absl::InvalidArgumentError("status request with fds"));
        return;
      }
      HandleStatus(connection);
      return;
    default:
      Reject(fd, absl::InvalidArgumentError("a second hello"));
      return;
  }
}

void Server::HandleHello(Connection& connection, const wire::Hello& hello,
                         size_t fd_count) {
  const int fd = connection.socket.get();
  if (absl::Status valid = ValidateHello(hello, fd_count); !valid.ok()) {
    Reject(fd, valid);
    return;
  }
  wire::ServerMessage reply;
  reply.mutable_hello()->set_version(wire::PROTOCOL_VERSION_1);
  reply.mutable_hello()->set_server_pid(::getpid());
  if (absl::Status sent = Send(fd, reply); !sent.ok()) {
    CloseConnection(fd);
    return;
  }
  connection.stage = Stage::kAwaitRequest;
}

void Server::HandleStatus(Connection& connection) {
  wire::ServerMessage reply;
  wire::StatusReply& status = *reply.mutable_status();
  status.set_server_pid(::getpid());
  status.set_uptime_usec(absl::ToInt64Microseconds(MonotonicNow() - started_));
  status.set_preload_usec(
      absl::ToInt64Microseconds(config_.preload_duration));
  status.set_live_children(static_cast<int>(children_.size()));
  status.set_spawned_total(spawned_total_);
  status.set_open_connections(static_cast<int>(connections_.size()));
  status.set_open_fds(CountOpenFds());
  status.set_rejected_total(rejected_total_);
  status.set_last_rejection(last_rejection_);
  const int fd = connection.socket.get();
  (void)Send(fd, reply);
  CloseConnection(fd);
}

void Server::HandleSpawn(Connection& connection,
                         const wire::SpawnRequest& request,
                         std::vector<UniqueFd> fds) {
  const int fd = connection.socket.get();
  if (absl::Status valid = ValidateSpawnRequest(request, fds.size());
      !valid.ok()) {
    Reject(fd, valid);
    return;
  }
  absl::StatusOr<pid_t> pid = Spawn(request, fds);
  if (!pid.ok()) {
    if (absl::IsInvalidArgument(pid.status())) {
      Reject(fd, pid.status());  // E.g. an unsealed argument memfd.
      return;
    }
    // A well-formed request we could not carry out (no such entry, out of
    // resources, ...): tell the client; not a protocol violation.
    (void)Send(fd, ErrorMessage(pid.status()));
    CloseConnection(fd);
    return;
  }
  connection.stage = Stage::kSettingUp;
  connection.child = *pid;
  Child& child = children_.at(*pid);
  child.connection = fd;
}

absl::StatusOr<pid_t> Server::Spawn(const wire::SpawnRequest& request,
                                    std::vector<UniqueFd>& fds) {
  EntryFunction entry = nullptr;
  if (request.kind() == wire::SPAWN_KIND_ENTRY) {
    entry = FindEntry(request.entry());
    if (entry == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "no entry point named '", request.entry(),
          "' is registered in this binary (FORKSERVER_ENTRY)"));
    }
  }
  MappedArgument memfd_argument;
  absl::string_view argument = request.arg();
  if (request.arg_in_memfd()) {
    ASSIGN_OR_RETURN(memfd_argument, MappedArgument::Map(fds.back().get()));
    argument = memfd_argument.view();
  }

  ChildSetupPlan plan;
  plan.new_session = true;
  if (!request.survive_server()) {
    plan.parent_death_signal = SIGKILL;
    plan.expected_parent = ::getpid();
  }
  const std::string& name = request.name().empty() ? request.entry()
                                                   : request.name();
  std::strncpy(plan.name, name.c_str(), sizeof(plan.name) - 1);
  plan.fd_count = request.child_fds_size();
  for (int i = 0; i < plan.fd_count; ++i) {
    plan.source_fds[i] = fds[i].get();
    plan.target_fds[i] = request.child_fds(i);
  }

  // Exec mode: argv/envp arrays point into `request`, which outlives fork().
  std::vector<char*> argv;
  std::vector<char*> envp;
  if (request.kind() == wire::SPAWN_KIND_EXEC) {
    const wire::ExecSpec& exec = request.exec();
    for (const std::string& arg : exec.argv()) {
      argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    for (const std::string& entry_text : exec.env()) {
      envp.push_back(const_cast<char*>(entry_text.c_str()));
    }
    envp.push_back(nullptr);
    plan.exec_path = exec.path().c_str();
    plan.exec_argv = argv.data();
    plan.exec_envp = envp.data();
    if (!exec.cwd().empty()) plan.cwd = exec.cwd().c_str();
  }

  // Decision 1 of design.md: fork only while single-threaded.
  ASSIGN_OR_RETURN(int threads, CountThreads());
  if (threads != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fork server has ", threads,
        " threads (did a preload start one?); refusing to fork"));
  }

  FlushStandardStreams();
  ASSIGN_OR_RETURN(ForkedChild forked, ForkChild(plan));
  if (forked.pid == 0) {
    // The child, set up. Only entry mode gets here (exec mode never
    // returns from child setup). Single-threaded: ordinary C++ is fine.
    RunEntryAndExit(entry, argument, request.entry());
  }
  ++spawned_total_;
  const pid_t pid = forked.pid;
  if (::fcntl(forked.report.get(), F_SETFL, O_NONBLOCK) != 0) {
    Log(absl::StrCat("fcntl(O_NONBLOCK) on a report pipe: ",
                     std::strerror(errno)));
  }
  Child& child = children_[pid];
  child.pidfd = std::move(forked.pidfd);
  child.report = std::move(forked.report);
  child.kill_on_disconnect = request.kill_on_disconnect();
  child.survive_server = request.survive_server();
  pending_reports_[child.report.get()] = pid;
  Watch(child.report.get(), Source::kReport);
  return pid;
}

void Server::OnReportReadable(int fd) { FinishSetup(pending_reports_.at(fd)); }

// The child's setup report is complete (EOF or a failure record): answer
// the client with the pid and pidfd, or with the failed step.
void Server::FinishSetup(pid_t pid) {
  Child& child = children_.at(pid);
  const int report = child.report.get();
  // A failure record is 8 bytes, written at once; success is EOF with
  // nothing. Keep what arrived across calls, and stop at a whole record
  // (the child may not have exited yet, so EOF may still be to come).
  while (child.report_bytes.size() < sizeof(ChildSetupFailure)) {
    char buffer[sizeof(ChildSetupFailure)];
    ssize_t n = ::read(report, buffer,
                       sizeof(buffer) - child.report_bytes.size());
    if (n > 0) {
      child.report_bytes.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;  // Not complete yet.
    break;  // EOF (or an error: judge what arrived so far).
  }
  ChildSetupFailure failure{};
  absl::Status result = ChildSetupResult(child.report_bytes.data(),
                                         child.report_bytes.size(), &failure);
  pending_reports_.erase(report);
  Unwatch(report);
  child.report.reset();

  const int fd = child.connection;
  if (fd < 0) return;  // The client left while the child was set up.
  Connection& connection = connections_.at(fd);
  if (!result.ok()) {
    wire::ServerMessage message = ErrorMessage(result);
    // The step and errno apart too, for clients that act on them.
    message.mutable_error()->set_step(
        ChildStepName(static_cast<ChildStep>(failure.step)));
    message.mutable_error()->set_errno_value(failure.error);
    (void)Send(fd, message);
    child.connection = -1;
    CloseConnection(fd);
    return;
  }
  wire::ServerMessage reply;
  reply.mutable_spawned()->set_pid(pid);
  const int pidfd = child.pidfd.get();
  if (!Send(fd, reply, {&pidfd, 1}).ok()) {
    CloseConnection(fd);
    return;
  }
  connection.stage = Stage::kRunning;
}

void Server::OnSignals() {
  signalfd_siginfo info;
  while (::read(signals_.get(), &info, sizeof(info)) ==
         static_cast<ssize_t>(sizeof(info))) {
    switch (info.ssi_signo) {
      case SIGCHLD:
        ReapChildren();
        break;
      case SIGTERM:
        BeginShutdown("SIGTERM");
        break;
      case SIGINT:
      case SIGHUP:
        if (config_.shutdown_on_interrupt) {
          BeginShutdown(info.ssi_signo == SIGINT ? "SIGINT" : "SIGHUP");
        }
        break;
    }
  }
}

void Server::ReapChildren() {
  while (true) {
    int status = 0;
    rusage usage{};
    const pid_t pid = ::wait4(-1, &status, WNOHANG, &usage);
    if (pid == 0) return;
    if (pid < 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: none left.
    }
    auto it = children_.find(pid);
    if (it == children_.end()) continue;
    if (it->second.report) FinishSetup(pid);  // The report is complete now.
    Child& child = it->second;
    if (child.connection >= 0) {
      wire::ServerMessage message;
      wire::ExitNotice& notice = *message.mutable_exited();
      notice.set_pid(pid);
      if (WIFSIGNALED(status)) {
        notice.set_signal(WTERMSIG(status));
        notice.set_core_dumped(WCOREDUMP(status));
      } else {
        notice.set_exit_code(WEXITSTATUS(status));
      }
      notice.set_user_cpu_usec(absl::ToInt64Microseconds(
          absl::DurationFromTimeval(usage.ru_utime)));
      notice.set_system_cpu_usec(absl::ToInt64Microseconds(
          absl::DurationFromTimeval(usage.ru_stime)));
      notice.set_max_rss_kib(usage.ru_maxrss);
      const int fd = child.connection;
      (void)Send(fd, message);
      child.connection = -1;
      CloseConnection(fd);
    }
    children_.erase(it);
  }
}

absl::Status Server::Send(int fd, const wire::ServerMessage& message,
                          absl::Span<const int> fds) {
  absl::Status sent = SendPacket(fd, message.SerializeAsString(), fds);
  if (!sent.ok() && !IsPeerClosed(sent)) {
    Log(absl::StrCat("reply on connection ", fd, " failed: ", sent.ToString()));
  }
  return sent;
}

void Server::Reject(int fd, const absl::Status& why) {
  ++rejected_total_;
  last_rejection_ = why.ToString();
  Log(absl::StrCat("closing connection ", fd, ": ", last_rejection_));
  (void)Send(fd, ErrorMessage(why));
  CloseConnection(fd);
}

void Server::CloseConnection(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  const pid_t pid = it->second.child;
  if (pid != 0) {
    auto child = children_.find(pid);
    if (child != children_.end() && child->second.connection == fd) {
      child->second.connection = -1;
      // Daemon semantics: the owner is gone, so is its child.
      if (child->second.kill_on_disconnect) {
        PidfdSendSignal(child->second.pidfd.get(), SIGKILL);
      }
    }
  }
  // Unread input makes close() reset the connection (ECONNRESET), and the
  // client would lose the error reply just sent; read it away first.
  Packet unread;
  for (int i = 0; i < 16; ++i) {
    if (!ReceivePacket(fd, absl::InfinitePast(), &unread).ok()) break;
  }
  Unwatch(fd);
  connections_.erase(it);
}

void Server::BeginShutdown(absl::string_view reason) {
  if (shutting_down_) return;
  shutting_down_ = true;
  shutdown_deadline_ = MonotonicNow() + config_.shutdown_grace;
  Unwatch(config_.listener.get());
  config_.listener.reset();
  ::unlink(config_.socket_path.c_str());
  if (config_.remove_socket_directory) {
    const size_t slash = config_.socket_path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      ::rmdir(config_.socket_path.substr(0, slash).c_str());
    }
  }
  for (auto& [pid, child] : children_) {
    if (!child.survive_server) PidfdSendSignal(child.pidfd.get(), SIGTERM);
  }
  // Quiet when the owner simply exited; anything else is worth a line.
  if (!config_.alive || reason != "its owner went away (alive pipe closed)") {
    Log(absl::StrCat("shutting down: ", reason));
  }
}

bool Server::ShutdownComplete() const {
  for (const auto& [pid, child] : children_) {
    if (!child.survive_server) return false;
  }
  return true;
}

void Server::KillRemainingChildren() {
  for (auto& [pid, child] : children_) {
    if (child.survive_server) continue;
    PidfdSendSignal(child.pidfd.get(), SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace

absl::Status RunForkServer(ServerConfig config) {
  Server server(std::move(config));
  return server.Run();
}

}  // namespace forkserver
