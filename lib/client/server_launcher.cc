#include "lib/client/server_launcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/child/spawner.h"
#include "forkserver/listener.h"
#include "forkserver/server_main.h"
#include "lib/base/secure_directory.h"
#include "lib/base/status_macros.h"
#include "lib/base/wait_readable.h"

extern char** environ;

namespace forkserver {
namespace {

// The server finds its descriptors at these numbers.
constexpr int kAliveFdInServer = 3;
constexpr int kReadyFdInServer = 4;
constexpr int kLockFdInServer = 5;

absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

std::string DescribeWaitInfo(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) {
    return absl::StrCat("exited with code ", info.si_status);
  }
  const char* name = sigabbrev_np(info.si_status);
  return absl::StrCat("killed by signal ", info.si_status, " (SIG",
                      name ? name : "?", ")");
}

// Reaps the server if it has ended (or, with `block`, once it ends).
// Returns how it ended, or "" while it runs.
std::string ReapThroughPidfd(int pidfd, bool block) {
  while (true) {
    siginfo_t info{};
    // __WALL: whatever its exit signal; P_PIDFD: this process and no other.
    const int flags = WEXITED | __WALL | (block ? 0 : WNOHANG);
    if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd),
                 &info, flags) == 0) {
      return info.si_pid == 0 ? "" : DescribeWaitInfo(info);
    }
    if (errno == EINTR) continue;
    // ECHILD: someone else (a waitpid(-1) in the application) reaped it.
    return absl::StrCat("ended, status unknown (", std::strerror(errno), ")");
  }
}

// What a server that could not clean up (killed, or never started) left:
// removed through the directory's descriptor.
void RemoveDirectory(const std::string& directory, const UniqueFd& directory_fd) {
  if (directory.empty() || !directory_fd) return;
  ::unlinkat(directory_fd.get(), "socket", 0);
  ::unlinkat(directory_fd.get(), LockFileName("socket").c_str(), 0);
  ::rmdir(directory.c_str());  // Only if empty; made by us, 0700.
}

std::vector<char*> PointersTo(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

absl::Status LaunchedServer::PrepareDirectory(const std::string& runtime_dir) {
  ASSIGN_OR_RETURN(directory_, MakePrivateDirectory(runtime_dir));
  socket_path_ = absl::StrCat(directory_, "/socket");
  absl::StatusOr<UniqueFd> directory_fd = OpenPrivateDirectory(directory_);
  if (!directory_fd.ok()) {
    ::rmdir(directory_.c_str());
    directory_.clear();
    return directory_fd.status();
  }
  directory_fd_ = *std::move(directory_fd);
  return absl::OkStatus();
}

// Forks and execs the server through the audited child path. Everything
// the child needs (argv, envp, the descriptor plan) is built here, before
// fork(); the child only runs child_setup.cc's async-signal-safe steps.
absl::Status LaunchedServer::Exec(const LaunchOptions& options, int alive_fd,
                                  int ready_fd, int lock_fd) {
  std::vector<std::string> args = {
      options.executable,
      kServeFlag,
      absl::StrCat("--socket=", socket_path_),
      absl::StrCat("--alive-fd=", kAliveFdInServer),
      absl::StrCat("--ready-fd=", kReadyFdInServer),
      absl::StrCat("--lock-fd=", kLockFdInServer),
      "--remove-socket-directory",
      absl::StrCat("--warm-workers=", options.warm_workers),
      "--",
  };
  std::vector<std::string> env;
  bool bind_now_set = false;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
    bind_now_set = bind_now_set || absl::StartsWith(*entry, "LD_BIND_NOW=");
  }
  if (options.bind_now && !bind_now_set) {
    // The dynamic linker resolves every symbol once, in the server, instead
    // of in each forked worker on its first call through each PLT slot
    // (fork does not share the lookups a child makes). The server removes
    // the variable before its preloads (--unset-ld-bind-now), so that
    // their getenv and their children's environments are the
    // application's; the binding mode itself stays (fork_server_client.h).
    env.emplace_back("LD_BIND_NOW=1");
    args.insert(args.end() - 1, kUnsetBindNowFlag);
  }
  args.insert(args.end(), options.application_args.begin(),
              options.application_args.end());
  std::vector<char*> argv = PointersTo(args);
  std::vector<char*> envp = PointersTo(env);

  ChildSetupPlan plan;
  // Same session as the application, as before: the server leaves when
  // its alive pipe closes, whatever signals the terminal sends.
  plan.new_session = false;
  const int sources[] = {alive_fd, ready_fd, lock_fd};
  const int targets[] = {kAliveFdInServer, kReadyFdInServer, kLockFdInServer};
  for (int i = 0; i < 3; ++i) {
    plan.source_fds[i] = sources[i];
    plan.target_fds[i] = targets[i];
  }
  plan.fd_count = 3;
  plan.exec_path = options.executable.c_str();
  plan.exec_argv = argv.data();
  plan.exec_envp = envp.data();
  ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan));
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  absl::Status setup = AwaitChildSetup(
      child.report.get(), absl::Now() + options.start_timeout);
  if (setup.ok()) return absl::OkStatus();
  // The child _exit()ed after reporting (or is stuck before execve).
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  exit_description_ = ReapThroughPidfd(pidfd_.get(), /*block=*/true);
  return absl::UnavailableError(absl::StrCat(
      "could not launch the fork server (", options.executable,
      "): ", setup.message()));
}

// Waits for "R" (listening) or "F<reason>" (a preload or listen failed),
// or EOF (it died), until the start deadline.
absl::Status LaunchedServer::AwaitReady(int ready_fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string said;
  char buffer[4096];
  while (true) {
    if (!WaitReadable(ready_fd, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "fork server (pid ", pid_, ") did not become ready within ",
          absl::FormatDuration(timeout),
          " (slow preloads? see ForkServerOptions::start_timeout)"));
    }
    ssize_t n = ::read(ready_fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    said.append(buffer, static_cast<size_t>(n));
  }
  if (said == "R") return absl::OkStatus();
  WaitForExit(absl::Now() + absl::Seconds(5));
  if (!said.empty() && said[0] == 'F') {
    return absl::FailedPreconditionError(
        absl::StrCat("fork server could not start: ", said.substr(1)));
  }
  return absl::UnavailableError(absl::StrCat(
      "fork server (pid ", pid_, ") died during start-up: ", DescribeExit()));
}

absl::StatusOr<std::unique_ptr<LaunchedServer>> LaunchedServer::Launch(
    const LaunchOptions& options) {
  // Check the path before making anything, with the longest name mkdtemp
  // can produce.
  RETURN_IF_ERROR(CheckSocketPath(
      absl::StrCat(options.runtime_dir, "/forkserver-XXXXXX/socket")));
  // Dead servers' directories (their lock free) go first.
  ReclaimStaleServerDirectories(options.runtime_dir);
  std::unique_ptr<LaunchedServer> server(new LaunchedServer);
  RETURN_IF_ERROR(server->PrepareDirectory(options.runtime_dir));
  // Taken now and handed to the server, so that from its first moment the
  // directory is visibly a live server's (ReclaimStaleServerDirectories).
  // From here on, the destructor cleans up whatever fails.
  ASSIGN_OR_RETURN(UniqueFd lock,
                   TakeServerLock(server->directory_fd_.get(), "socket",
                                  server->socket_path_));
  ASSIGN_OR_RETURN(auto alive, MakePipe());
  ASSIGN_OR_RETURN(auto ready, MakePipe());
  RETURN_IF_ERROR(server->Exec(options, alive.first.get(), ready.second.get(),
                               lock.get()));
  alive.first.reset();
  ready.second.reset();
  lock.reset();
  server->alive_ = std::move(alive.second);
  RETURN_IF_ERROR(server->AwaitReady(ready.first.get(), options.start_timeout));
  return server;
}

LaunchedServer::~LaunchedServer() {
  if (abandoned_) return;
  if (pidfd_ && exit_description_.empty()) {
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    exit_description_ = ReapThroughPidfd(pidfd_.get(), /*block=*/true);
  }
  RemoveDirectory(directory_, directory_fd_);
}

bool LaunchedServer::Exited() {
  if (!pidfd_) return true;
  if (exit_description_.empty()) {
    exit_description_ = ReapThroughPidfd(pidfd_.get(), /*block=*/false);
  }
  return !exit_description_.empty();
}

std::string LaunchedServer::DescribeExit() {
  if (!Exited()) return "running";
  return exit_description_;
}

bool LaunchedServer::WaitForExit(absl::Time deadline) {
  if (pidfd_) WaitReadable(pidfd_.get(), deadline);
  return Exited();
}

void LaunchedServer::Abandon() {
  // In a forked child the descriptor numbers may already be closed and
  // reused (child setup closes everything it was not asked to keep), so
  // release them without close(); the server is the parent's to stop.
  (void)alive_.release();
  (void)pidfd_.release();
  (void)directory_fd_.release();
  directory_.clear();
  abandoned_ = true;
}

}  // namespace forkserver
