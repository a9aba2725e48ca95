#include "tests/chaos/chaos_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/connection_cache.h"
#include "lib/client/remote_command.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_util.h"

extern char** environ;

namespace forkserver {
namespace chaos {
namespace {

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int DecodeStatus(int status) {
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

bool WaitPidfd(int pidfd, absl::Time deadline) {
  while (true) {
    const int64_t ms = std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now()) + 1);
    pollfd pfd{pidfd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 60000)));
    if (ready > 0) return true;
    if (ready < 0 && errno == EINTR) continue;
    if (absl::Now() >= deadline) return false;
  }
}

// Prints the suite's figures once, at the end.
class FiguresPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    Figures& f = GlobalFigures();
    std::printf(
        "chaos figures: %ld requests (%ld answered or clearly refused), "
        "%ld faults injected, %ld bad inputs, peak %ld connections held, "
        "%ld pool tasks (%ld ended WorkerLost)\n",
        f.requests.load(), f.answered.load(), f.faults.load(),
        f.bad_inputs.load(), f.connections.load(), f.pool_tasks.load(),
        f.pool_lost.load());
  }
};
::testing::Environment* const kFiguresPrinter =
    ::testing::AddGlobalTestEnvironment(new FiguresPrinter);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WriteFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) ==
                  static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

}  // namespace

Figures& GlobalFigures() {
  // Shared with the copies RunBoundedInChild forks, so their counts add up.
  static Figures* figures = [] {
    void* memory = ::mmap(nullptr, sizeof(Figures), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? new Figures : new (memory) Figures;
  }();
  return *figures;
}

void Ledger::Sent(long n) {
  sent += n;
  GlobalFigures().requests += n;
}
void Ledger::Settled(long n) {
  settled += n;
  GlobalFigures().answered += n;
}
void Ledger::Hung(const std::string& what) { hung.push_back(what); }

FdSnapshot SnapshotFds(pid_t pid) {
  FdSnapshot snapshot;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* fds = ::opendir(dir.c_str());
  if (fds == nullptr) return snapshot;
  while (dirent* entry = ::readdir(fds)) {
    if (entry->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string link = absl::StrCat(dir, "/", entry->d_name);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n < 0) continue;  // Closed while we looked.
    // Our own opendir() descriptor shows up when pid is us.
    if (pid == ::getpid() && std::atoi(entry->d_name) == ::dirfd(fds)) continue;
    ++snapshot.total;
    const std::string text(target, static_cast<size_t>(n));
    if (text.rfind("socket:", 0) == 0) ++snapshot.sockets;
    snapshot.targets.push_back(absl::StrCat(entry->d_name, "->", text));
  }
  ::closedir(fds);
  return snapshot;
}

std::vector<pid_t> ProcessesWithArgument(const std::string& needle) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* entry = ::readdir(proc)) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    size_t start = 0;
    while (start < cmdline.size()) {
      size_t end = cmdline.find('\0', start);
      if (end == std::string::npos) end = cmdline.size();
      if (cmdline.compare(start, end - start, needle) == 0) {
        if (IsRunning(pid)) found.push_back(pid);
        break;
      }
      start = end + 1;
    }
  }
  ::closedir(proc);
  return found;
}

char ProcessState(pid_t pid) {
  const std::string line = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? '?' : line[close + 2];
}

bool WaitState(pid_t pid, char state, absl::Time deadline) {
  while (ProcessState(pid) != state) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

bool IsRunning(pid_t pid) {
  const char state = ProcessState(pid);
  return state != '?' && state != 'Z' && state != 'X';
}

std::string UniqueSleepSeconds(int whole_seconds) {
  static std::atomic<int> counter{0};
  // sleep(1) takes fractional seconds: the fraction makes it ours.
  return absl::StrCat(whole_seconds, ".", ::getpid(), counter++);
}

std::string ReadAvailable(int fd, absl::Time deadline, bool* eof) {
  if (eof != nullptr) *eof = false;
  std::string text;
  char buffer[4096];
  while (true) {
    const int64_t ms = std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 60000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return text;
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && eof != nullptr) *eof = true;
    if (n <= 0) return text;
    text.append(buffer, static_cast<size_t>(n));
  }
}

// ---- Daemon

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(
    const std::string& socket, const std::string& log_path,
    const DaemonOptions& options) {
  const std::string program = testing::RunfilesPath("tools/forkserverd");
  std::vector<std::string> args = {program, absl::StrCat("--socket=", socket)};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  UniqueFd log(::open(log_path.c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return absl::ErrnoToStatus(errno, "open " + log_path);
  const int err_fd = options.stderr_fd >= 0 ? options.stderr_fd : log.get();
  const pid_t parent = ::getpid();
  rlimit nofile{};
  const bool set_nofile = options.nofile.has_value();
  if (set_nofile) nofile = *options.nofile;

  const pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // Async-signal-safe calls only, up to execve.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(log.get(), 1) < 0 ||
        ::dup2(err_fd, 2) < 0) {
      ::_exit(126);
    }
    ::syscall(SYS_close_range, 3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (set_nofile && ::setrlimit(RLIMIT_NOFILE, &nofile) != 0) ::_exit(125);
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  UniqueFd pidfd(PidfdOpen(pid));
  return std::unique_ptr<Daemon>(new Daemon(pid, std::move(pidfd), socket));
}

Daemon::~Daemon() {
  if (exit_code_.has_value()) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool Daemon::WaitReady(absl::Time deadline) {
  while (absl::Now() < deadline) {
    if (exited()) return false;
    absl::StatusOr<internal::ServerConnection> connection =
        internal::ConnectToSocket(socket_);
    if (connection.ok()) {
      wire::ClientMessage request;
      request.mutable_status();
      if (connection->Request(request).ok()) return true;
    }
    if (WaitPidfd(pidfd_.get(), absl::Now() + absl::Milliseconds(5))) {
      (void)WaitExit(absl::ZeroDuration());
      return false;
    }
  }
  return false;
}

void Daemon::Signal(int sig) {
  if (exit_code_.has_value()) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
}

absl::StatusOr<int> Daemon::WaitExit(absl::Duration timeout) {
  if (exit_code_.has_value()) return *exit_code_;
  if (!WaitPidfd(pidfd_.get(), absl::Now() + timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "forkserverd (pid ", pid_, ") still runs after ",
        absl::FormatDuration(timeout)));
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "waitpid");
  }
  exit_code_ = DecodeStatus(status);
  return *exit_code_;
}

// ---- The fixture

void ChaosTest::SetUp() {
  char templ[] = "/tmp/fsc-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr) << std::strerror(errno);
  dir_ = templ;
  socket_ = dir_ + "/run/socket";  // forkserverd makes run/ (0700).
  StartDaemon();
}

std::string ChaosTest::daemon_log() const {
  return ReadFile(dir_ + "/forkserverd.log");
}

void ChaosTest::StartDaemon(const DaemonOptions& options) {
  absl::StatusOr<std::unique_ptr<Daemon>> daemon =
      Daemon::Start(socket_, dir_ + "/forkserverd.log", options);
  ASSERT_OK(daemon.status());
  daemon_ = *std::move(daemon);
  ASSERT_TRUE(daemon_->WaitReady(absl::Now() + absl::Seconds(30)))
      << "forkserverd did not come up; its log:\n" << daemon_log();
  // Warm up (one spawn), then the baseline: the count once the listener is
  // the only socket left (the warm-up's connection closed).
  ASSERT_OK(NormalSpawn()) << daemon_log();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  // Settled also means the warm-up child is reaped: no pidfd or report
  // pipe of it left (a baseline taken before that is one too high).
  // The daemon's own: the listener, and its descriptor closer's socket
  // and pidfd (forkserver/client_fd_closer.h).
  auto settled = [](const FdSnapshot& snapshot) {
    if (snapshot.sockets != 2) return false;
    int pidfds = 0;
    for (const std::string& target : snapshot.targets) {
      // 0-2 may be pipes of the test's own (an unread stderr).
      if (std::atoi(target.c_str()) <= 2) continue;
      if (target.find("->pipe:") != std::string::npos) return false;
      pidfds += target.find("[pidfd]") != std::string::npos;
    }
    return pidfds == 1;
  };
  FdSnapshot snapshot = SnapshotFds(daemon_->pid());
  while (!settled(snapshot) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
    snapshot = SnapshotFds(daemon_->pid());
  }
  ASSERT_TRUE(settled(snapshot))
      << "daemon did not settle: " << absl::StrJoin(snapshot.targets, " ");
  baseline_fds_ = snapshot.total;
}

void ChaosTest::StopDaemon() {
  if (daemon_ == nullptr) return;
  daemon_->Signal(SIGTERM);
  absl::StatusOr<int> exit = daemon_->WaitExit(absl::Seconds(10));
  EXPECT_OK(exit.status()) << daemon_log();
  if (exit.ok()) {
    EXPECT_EQ(*exit, 0) << daemon_log();
  }
  daemon_.reset();
}

void ChaosTest::RestartDaemon(const DaemonOptions& options) {
  daemon_.reset();  // SIGKILL and reap, if it still runs.
  StartDaemon(options);
}

absl::Status ChaosTest::ExpectServes(absl::string_view context) {
  ledger_.Sent();
  absl::Status served = NormalSpawn();
  EXPECT_OK(served) << context;
  if (served.ok()) {
    ledger_.Settled();
  } else {
    ledger_.Hung(served.ToString());
  }
  return served;
}

void ChaosTest::WhileDaemonStopped(const std::function<void()>& send) {
  daemon_->Signal(SIGSTOP);
  absl::Cleanup resume = [&] { daemon_->Signal(SIGCONT); };
  ASSERT_TRUE(WaitState(daemon_->pid(), 'T', absl::Now() + absl::Seconds(5)));
  send();
}

absl::Status ChaosTest::NormalSpawn(absl::Duration timeout) {
  CommandSpec spec;
  spec.argv = {"/bin/true"};
  spec.fds = {};
  absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
  if (!command.ok()) return command.status();
  absl::StatusOr<int> exit = command->Wait(timeout);
  // A normal client that then goes away: its kept connections (this one
  // and any a case's commands left, lib/client/connection_cache.h) close,
  // so the daemon's descriptors can return to their baseline.
  internal::DropIdleConnections(socket_);
  if (!exit.ok()) return exit.status();
  if (*exit != 0) {
    return absl::InternalError(absl::StrCat("/bin/true exited ", *exit));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChaosTest::CtlResult> ChaosTest::RunCtl(
    const std::vector<std::string>& ctl_args, int closed_fd,
    absl::Duration timeout) {
  std::vector<std::string> args = {
      testing::RunfilesPath("tools/forkserverctl"),
      absl::StrCat("--socket=", socket_)};
  args.insert(args.end(), ctl_args.begin(), ctl_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  auto [err_read, err_write] = testing::MakePipe();
  auto [out_read, out_write] = testing::MakePipe();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (::dup2(null_fd, 0) < 0 || ::dup2(out_write.get(), 1) < 0 ||
        ::dup2(err_write.get(), 2) < 0) {
      ::_exit(126);
    }
    ::syscall(SYS_close_range, 3, ~0U, 0);
    if (closed_fd >= 0) ::close(closed_fd);
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  err_write.reset();
  out_write.reset();
  UniqueFd pidfd(PidfdOpen(pid));
  const absl::Time deadline = absl::Now() + timeout;
  CtlResult result;
  // Small outputs: read stderr to EOF (or the deadline), then stdout. EOF
  // means ctl and everything it ran are done with it.
  result.stderr_text = ReadAvailable(err_read.get(), deadline, &result.stderr_eof);
  result.stdout_text = ReadAvailable(out_read.get(), absl::Now());
  const bool ended = WaitPidfd(pidfd.get(), deadline);
  if (!ended) ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!ended) {
    return absl::DeadlineExceededError(absl::StrCat(
        "forkserverctl ", absl::StrJoin(ctl_args, " "), " still ran after ",
        absl::FormatDuration(timeout), " (killed); stderr: ",
        result.stderr_text));
  }
  result.exit_code = DecodeStatus(status);
  return result;
}

void ChaosTest::ExpectDaemonInvariants(const std::string& context) {
  ASSERT_NE(daemon_, nullptr);
  const pid_t pid = daemon_->pid();
  ASSERT_TRUE(IsRunning(pid)) << context << ": the daemon is gone; log:\n"
                              << daemon_log();
  // Fds back to baseline (connections close as the server gets to them);
  // before the spawn below, whose own connection and child would count.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  FdSnapshot fds = SnapshotFds(pid);
  while (fds.total != baseline_fds_ && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
    fds = SnapshotFds(pid);
  }
  EXPECT_EQ(fds.total, baseline_fds_)
      << context << ": daemon fds not back to baseline: "
      << absl::StrJoin(fds.targets, " ");
  // Serves, once the case's connections are closed: a case that ends by
  // dropping 1,100 idle connections has them all still counted until the
  // server has read each EOF (the wait above), and a spawn before that is
  // rightly refused as over max_connections.
  ledger_.Sent();
  absl::Status served = NormalSpawn();
  if (served.ok()) {
    ledger_.Settled();
  } else {
    const std::string log = daemon_log();
    ADD_FAILURE() << context << ": the server does not serve: " << served
                  << "\nlog tail:\n"
                  << log.substr(log.size() > 2000 ? log.size() - 2000 : 0);
  }
  // No zombies under the daemon.
  std::vector<pid_t> zombies = testing::ZombieChildrenOf(pid);
  while (!zombies.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
    zombies = testing::ZombieChildrenOf(pid);
  }
  EXPECT_TRUE(zombies.empty())
      << context << ": zombies under the daemon: " << absl::StrJoin(zombies, " ");
}

void ChaosTest::TearDown() {
  if (dir_.empty()) return;
  if (check_daemon_ && daemon_ != nullptr && !daemon_->exited()) {
    ExpectDaemonInvariants("after the case");
    StopDaemon();
  }
  daemon_.reset();
  // No zombies under the test itself (helpers it forked, daemons).
  const std::vector<pid_t> ours = testing::ZombieChildrenOf(::getpid());
  EXPECT_TRUE(ours.empty()) << "zombies under the test: " << absl::StrJoin(ours, " ");
  // Nothing lost or hung.
  EXPECT_TRUE(ledger_.hung.empty())
      << "requests that hung or were lost:\n  " << absl::StrJoin(ledger_.hung, "\n  ");
  EXPECT_EQ(ledger_.settled + static_cast<long>(ledger_.hung.size()), ledger_.sent)
      << "requests the case lost track of";
  ::unlink(socket_.c_str());
  ::unlink((dir_ + "/forkserverd.log").c_str());
  ::rmdir((dir_ + "/run").c_str());
  ::rmdir(dir_.c_str());
}

// ---- Bounded runs in a child

namespace {

// Sends each failure of the child's test to the parent as it happens.
class PipeReporter : public ::testing::EmptyTestEventListener {
 public:
  explicit PipeReporter(int fd) : fd_(fd) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::string text = absl::StrCat(
        result.file_name() != nullptr ? result.file_name() : "?", ":",
        result.line_number(), ": ", result.message());
    text.push_back('\x1e');  // Record separator.
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

 private:
  int fd_;
};

}  // namespace

void RunBoundedInChild(absl::Duration limit, const std::function<void()>& body) {
  ASSERT_EQ(testing::ThreadCount(), 1)
      << "forking a copy of the test needs a single-threaded test process";
  auto [read_end, write_end] = testing::MakePipe();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) {
    read_end.reset();
    ::testing::UnitTest::GetInstance()->listeners().Append(
        new PipeReporter(write_end.get()));
    body();
    std::fflush(nullptr);
    ::_exit(0);  // Not exit(): this is a copy of the test binary.
  }
  write_end.reset();
  UniqueFd pidfd(PidfdOpen(pid));
  const absl::Time deadline = absl::Now() + limit;
  const std::string reports = ReadAvailable(read_end.get(), deadline);
  const bool ended = WaitPidfd(pidfd.get(), absl::Now() > deadline
                                                ? absl::Now()
                                                : deadline);
  for (size_t start = 0; start < reports.size();) {
    size_t end = reports.find('\x1e', start);
    if (end == std::string::npos) end = reports.size();
    ADD_FAILURE() << "[in the bounded child] " << reports.substr(start, end - start);
    start = end + 1;
  }
  if (!ended) {
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    ADD_FAILURE() << "the case did not finish within "
                  << absl::FormatDuration(limit)
                  << " (something hung; the child was killed)";
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (ended) {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the case's child ended with status " << DecodeStatus(status);
  }
}

// ---- pids cgroup

absl::StatusOr<std::unique_ptr<PidsCgroup>> PidsCgroup::Create(
    const std::string& name) {
  std::string parent;
  struct stat st;
  if (::stat("/sys/fs/cgroup/pids/cgroup.procs", &st) == 0) {
    parent = "/sys/fs/cgroup/pids";  // cgroup v1 (this hybrid host).
  } else if (ReadFile("/sys/fs/cgroup/cgroup.subtree_control").find("pids") !=
             std::string::npos) {
    parent = "/sys/fs/cgroup";  // v2 with the pids controller enabled.
  } else {
    return absl::FailedPreconditionError(
        "no pids cgroup controller (neither /sys/fs/cgroup/pids nor pids in "
        "/sys/fs/cgroup/cgroup.subtree_control)");
  }
  const std::string path = absl::StrCat(parent, "/", name);
  if (::mkdir(path.c_str(), 0755) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mkdir ", path,
                                                   " (not writable here)"));
  }
  return std::unique_ptr<PidsCgroup>(new PidsCgroup(path, parent));
}

PidsCgroup::~PidsCgroup() {
  // Move whatever is left back to the parent, then remove ours.
  const std::string procs = ReadFile(path_ + "/cgroup.procs");
  std::istringstream in(procs);
  pid_t pid;
  while (in >> pid) WriteFile(parent_ + "/cgroup.procs", absl::StrCat(pid));
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (::rmdir(path_.c_str()) != 0 && errno == EBUSY && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
}

absl::Status PidsCgroup::SetMax(int max) {
  if (!WriteFile(path_ + "/pids.max", absl::StrCat(max))) {
    return absl::ErrnoToStatus(errno, "write pids.max");
  }
  return absl::OkStatus();
}

absl::Status PidsCgroup::Add(pid_t pid) {
  if (!WriteFile(path_ + "/cgroup.procs", absl::StrCat(pid))) {
    return absl::ErrnoToStatus(errno, "write cgroup.procs");
  }
  return absl::OkStatus();
}

}  // namespace chaos
}  // namespace forkserver
