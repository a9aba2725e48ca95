#include "forkserver/server_main.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/listener.h"
#include "forkserver/server.h"
#include "forkserver/child/spawner.h"
#include "lib/registry/preload.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace {

struct ServeFlags {
  std::string socket_path;
  int alive_fd = -1;
  int ready_fd = -1;
  int lock_fd = -1;
  bool remove_socket_directory = false;
  bool unset_bind_now = false;
  int warm_workers = 0;
};

[[noreturn]] void Die(absl::string_view message) {
  std::fprintf(stderr, "forkserver[%d]: %.*s\n", ::getpid(),
               static_cast<int>(message.size()), message.data());
  std::exit(2);
}

ServeFlags ParseFlags(int argc, char** argv) {
  ServeFlags flags;
  for (int i = 2; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;  // The application's own arguments follow.
    if (absl::ConsumePrefix(&arg, "--socket=")) {
      flags.socket_path = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--alive-fd=")) {
      if (!absl::SimpleAtoi(arg, &flags.alive_fd)) Die("bad --alive-fd");
    } else if (absl::ConsumePrefix(&arg, "--ready-fd=")) {
      if (!absl::SimpleAtoi(arg, &flags.ready_fd)) Die("bad --ready-fd");
    } else if (absl::ConsumePrefix(&arg, "--lock-fd=")) {
      if (!absl::SimpleAtoi(arg, &flags.lock_fd)) Die("bad --lock-fd");
    } else if (absl::ConsumePrefix(&arg, "--warm-workers=")) {
      if (!absl::SimpleAtoi(arg, &flags.warm_workers) ||
          flags.warm_workers < 0 || flags.warm_workers > kMaxWarmWorkers) {
        Die(absl::StrCat("bad --warm-workers (0..", kMaxWarmWorkers, ")"));
      }
    } else if (arg == "--remove-socket-directory") {
      flags.remove_socket_directory = true;
    } else if (arg == kUnsetBindNowFlag) {
      flags.unset_bind_now = true;
    } else {
      Die(absl::StrCat("unknown server flag '", arg, "'"));
    }
  }
  if (flags.socket_path.empty() || flags.ready_fd < 3 || flags.alive_fd < 3 ||
      flags.ready_fd == flags.alive_fd) {
    Die("server mode needs --socket=, --alive-fd= and --ready-fd= (>= 3)");
  }
  return flags;
}

// The launcher may leave descriptors open by mistake; none but the given
// ones (-1: none) are ours to keep.
void CloseInheritedFds(std::vector<int> keep) {
  keep.push_back(2);
  std::sort(keep.begin(), keep.end());
  unsigned next = 3;
  auto close_range = [](unsigned first, unsigned last) {
    if (first <= last && CloseFdRangeAsyncSafe(first, last) != 0) {
      std::fprintf(stderr, "forkserver[%d]: could not close inherited fds\n",
                   ::getpid());
    }
  };
  for (int fd : keep) {
    if (fd < 3) continue;
    if (static_cast<unsigned>(fd) > next) close_range(next, fd - 1);
    next = static_cast<unsigned>(fd) + 1;
  }
  close_range(next, ~0u);
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    if (null != STDIN_FILENO) ::close(null);
  }
}

[[noreturn]] void FailStart(int ready_fd, absl::string_view reason) {
  std::string message = absl::StrCat("F", reason.substr(0, 4000));
  (void)!::write(ready_fd, message.data(), message.size());
  ::close(ready_fd);
  std::fprintf(stderr, "forkserver[%d]: could not start: %.*s\n", ::getpid(),
               static_cast<int>(reason.size()), reason.data());
  std::exit(kServerStartFailedExitCode);
}

}  // namespace

void ServerMain(int argc, char** argv) {
  const ServeFlags flags = ParseFlags(argc, argv);
  // The dynamic linker has read it already; nobody after it should.
  if (flags.unset_bind_now) ::unsetenv("LD_BIND_NOW");
  CloseInheritedFds({flags.alive_fd, flags.ready_fd, flags.lock_fd});
  ::fcntl(flags.alive_fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(flags.ready_fd, F_SETFD, FD_CLOEXEC);
  ::prctl(PR_SET_NAME, "forkserver", 0, 0, 0);

  if (absl::Status preloaded = RunPreloadsOnce(); !preloaded.ok()) {
    FailStart(flags.ready_fd, preloaded.ToString());
  }
  absl::StatusOr<int> threads = CountThreads();
  if (threads.ok() && *threads != 1) {
    FailStart(flags.ready_fd,
              absl::StrCat("the preloads left ", *threads,
                           " threads running; a fork server must be "
                           "single-threaded to fork safely"));
  }
  ListenOptions listen_options;
  listen_options.held_lock = flags.lock_fd;
  absl::StatusOr<ListeningSocket> listener =
      ListenAt(flags.socket_path, listen_options);
  if (!listener.ok()) FailStart(flags.ready_fd, listener.status().ToString());
  // ListenAt holds its own copy of the launcher's lock.
  if (flags.lock_fd >= 0) ::close(flags.lock_fd);

  (void)!::write(flags.ready_fd, "R", 1);
  ::close(flags.ready_fd);

  ServerConfig config;
  config.listener = std::move(listener->listener);
  // Through the directory's descriptor: the server's unlink at shutdown
  // cannot be redirected by a changed path (issue 7, item 13).
  config.socket_path = listener->PathThroughDirectory();
  config.remove_socket_directory = false;  // Done below, lock file first.
  config.alive = UniqueFd(flags.alive_fd);
  config.preload_duration = PreloadDuration();
  config.warm_workers = flags.warm_workers;
  absl::Status served = RunForkServer(std::move(config));
  // Still holding the lock: nobody else can be serving here yet.
  listener->RemoveFiles(flags.remove_socket_directory);
  if (!served.ok()) {
    std::fprintf(stderr, "forkserver[%d]: %s\n", ::getpid(),
                 served.ToString().c_str());
    std::exit(1);
  }
  std::fflush(nullptr);
  ::_exit(0);
}

}  // namespace forkserver
