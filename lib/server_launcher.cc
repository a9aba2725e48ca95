#include "lib/server_launcher.h"

// Boost.Process 1.81 with std::filesystem forgets two includes of its own.
#include <boost/optional.hpp>
#include <type_traits>
// clang-format off
#include <boost/asio/io_context.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
// clang-format on

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/listener.h"
#include "forkserver/server_main.h"
#include "lib/seqpacket.h"
#include "lib/status_macros.h"

namespace forkserver {

namespace bp = boost::process::v2;

struct LaunchedServer::BoostHandle {
  using Process = bp::basic_process<boost::asio::io_context::executor_type>;
  boost::asio::io_context context;
  std::unique_ptr<Process> process;
};

namespace {

// The server finds its two descriptors at these numbers.
constexpr int kAliveFdInServer = 3;
constexpr int kReadyFdInServer = 4;

// Installs `fd` at `target` in the launched process: a Boost.Process
// initializer. Not boost's posix::bind_fd, whose on_setup() in 1.81 falls
// off the end without returning its error_code (undefined behaviour; UBSan
// reports it, and a garbage "error" can fail the launch).
struct InheritFd {
  int target;
  int fd;

  bp::error_code on_setup(bp::posix::default_launcher& launcher,
                          const bp::filesystem::path&, const char* const*) {
    launcher.fd_whitelist.push_back(target);
    return {};
  }
  // Runs in the forked child before execve.
  bp::error_code on_exec_setup(bp::posix::default_launcher&,
                               const bp::filesystem::path&,
                               const char* const*) {
    if (::dup2(fd, target) < 0) {
      return bp::error_code(errno, bp::system_category());
    }
    return {};
  }
};

// InheritFd dup2()s a descriptor onto its target; when they are equal,
// dup2 does nothing and O_CLOEXEC survives, so the descriptor would vanish
// at exec. Moving both ends above the targets first rules that out.
absl::StatusOr<UniqueFd> DupAbove(int fd, int floor) {
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, floor));
  if (!copy) return ErrnoError("fcntl(F_DUPFD_CLOEXEC)");
  return copy;
}

absl::StatusOr<std::pair<UniqueFd, UniqueFd>> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

std::string DescribeWaitStatus(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (SIG",
                        name ? name : "?", ")");
  }
  return absl::StrCat("exited with code ", WEXITSTATUS(status));
}

void RemoveDirectory(const std::string& directory,
                     const std::string& socket_path) {
  if (directory.empty()) return;
  ::unlink(socket_path.c_str());
  ::rmdir(directory.c_str());
}

}  // namespace

LaunchedServer::LaunchedServer() : handle_(std::make_unique<BoostHandle>()) {}

absl::StatusOr<std::unique_ptr<LaunchedServer>> LaunchedServer::Launch(
    const LaunchOptions& options) {
  // Check the path before making anything, with the longest name mkdtemp
  // can produce.
  RETURN_IF_ERROR(CheckSocketPath(
      absl::StrCat(options.runtime_dir, "/forkserver-XXXXXX/socket")));
  std::unique_ptr<LaunchedServer> server(new LaunchedServer);
  ASSIGN_OR_RETURN(server->directory_,
                   MakePrivateDirectory(options.runtime_dir));
  server->socket_path_ = absl::StrCat(server->directory_, "/socket");

  ASSIGN_OR_RETURN(auto alive, MakePipe());
  ASSIGN_OR_RETURN(auto ready, MakePipe());
  ASSIGN_OR_RETURN(UniqueFd alive_for_server, DupAbove(alive.first.get(), 10));
  ASSIGN_OR_RETURN(UniqueFd ready_for_server, DupAbove(ready.second.get(), 10));
  alive.first.reset();
  ready.second.reset();

  std::vector<std::string> args = {
      kServeFlag,
      absl::StrCat("--socket=", server->socket_path_),
      absl::StrCat("--alive-fd=", kAliveFdInServer),
      absl::StrCat("--ready-fd=", kReadyFdInServer),
      "--remove-socket-directory",
      "--",
  };
  args.insert(args.end(), options.application_args.begin(),
              options.application_args.end());

  bp::error_code error;
  server->handle_->process = std::make_unique<BoostHandle::Process>(
      bp::default_process_launcher()(
          server->handle_->context.get_executor(), error, "/proc/self/exe",
          args, InheritFd{kAliveFdInServer, alive_for_server.get()},
          InheritFd{kReadyFdInServer, ready_for_server.get()}));
  alive_for_server.reset();
  ready_for_server.reset();
  if (error) {
    RemoveDirectory(server->directory_, server->socket_path_);
    return absl::UnavailableError(
        absl::StrCat("could not launch the fork server: ", error.message()));
  }
  server->pid_ = server->handle_->process->id();
  server->alive_ = std::move(alive.second);
  server->pidfd_.reset(
      static_cast<int>(::syscall(SYS_pidfd_open, server->pid_, 0)));

  // Wait for "R" (listening) or "F<reason>" (a preload or listen failed),
  // or EOF (it died), until the start deadline.
  const absl::Time deadline = absl::Now() + options.start_timeout;
  std::string said;
  char buffer[4096];
  while (true) {
    if (!WaitReadable(ready.first.get(), deadline)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "fork server (pid ", server->pid_, ") did not become ready within ",
          absl::FormatDuration(options.start_timeout),
          " (slow preloads? see ForkServerOptions::start_timeout)"));
    }
    ssize_t n = ::read(ready.first.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    said.append(buffer, static_cast<size_t>(n));
  }
  if (said == "R") return server;
  server->WaitForExit(absl::Now() + absl::Seconds(5));
  if (!said.empty() && said[0] == 'F') {
    return absl::FailedPreconditionError(
        absl::StrCat("fork server could not start: ", said.substr(1)));
  }
  return absl::UnavailableError(
      absl::StrCat("fork server (pid ", server->pid_,
                   ") died during start-up: ", server->DescribeExit()));
}

LaunchedServer::~LaunchedServer() {
  if (handle_ == nullptr) return;  // Abandoned.
  // boost's destructor SIGKILLs a running process and reaps it.
  handle_->process.reset();
  RemoveDirectory(directory_, socket_path_);
}

bool LaunchedServer::Exited() {
  if (handle_->process == nullptr) return true;
  bp::error_code error;
  const bool running = handle_->process->running(error);
  return !running || error;
}

std::string LaunchedServer::DescribeExit() {
  if (!Exited()) return "running";
  return DescribeWaitStatus(handle_->process->native_exit_code());
}

bool LaunchedServer::WaitForExit(absl::Time deadline) {
  if (pidfd_) WaitReadable(pidfd_.get(), deadline);
  return Exited();
}

void LaunchedServer::Abandon() {
  // In a forked child the descriptor numbers may already be closed and
  // reused (child setup closes everything it was not asked to keep), so
  // release them without close(). The boost handle is leaked on purpose:
  // destroying it would kill the parent's server.
  (void)alive_.release();
  (void)pidfd_.release();
  (void)handle_.release();
  directory_.clear();
}

}  // namespace forkserver
