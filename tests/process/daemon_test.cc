// Issue 7, item 17: a daemon child of the "fork" and "spawn" start methods
// dies with its owner, even when the owner is SIGKILLed (no atexit hook
// runs then): PR_SET_PDEATHSIG(SIGKILL) in the child's setup plan.

#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "lib/base/unique_fd.h"
#include "lib/base/wait_readable.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_util.h"

extern char** environ;

namespace forkserver {
namespace {

UniqueFd PidfdOpen(pid_t pid) {
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// Reads up to the first newline (the owner keeps its stdout open).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (WaitReadable(fd, absl::Now() + absl::Seconds(60))) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    line.push_back(c);
  }
  return line;
}

class DaemonDiesWithOwnerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DaemonDiesWithOwnerTest, WhenTheOwnerIsSigkilled) {
  auto [out_read, out_write] = testing::MakePipe();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  const std::string program = testing::RunfilesPath("tests/process/daemon_owner");
  std::string method = GetParam();
  char* argv[] = {const_cast<char*>(program.c_str()), method.data(), nullptr};
  pid_t owner = 0;
  ASSERT_EQ(::posix_spawn(&owner, program.c_str(), &actions, nullptr, argv,
                          environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  out_write.reset();
  UniqueFd owner_pidfd = PidfdOpen(owner);
  ASSERT_TRUE(owner_pidfd.valid());

  // The owner writes its daemon's pid once the daemon is set up.
  const std::string said = ReadLine(out_read.get());
  int daemon_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(said), &daemon_pid))
      << "owner said '" << said << "'";
  // The daemon is the owner's unreaped child while the owner lives: its
  // pid cannot have been reused yet.
  UniqueFd daemon_pidfd = PidfdOpen(daemon_pid);
  ASSERT_TRUE(daemon_pidfd.valid());
  ASSERT_FALSE(WaitReadable(daemon_pidfd.get(), absl::InfinitePast()));

  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, owner_pidfd.get(), SIGKILL,
                      nullptr, 0),
            0);
  int status = 0;
  ASSERT_EQ(::waitpid(owner, &status, 0), owner);
  const bool daemon_ended =
      WaitReadable(daemon_pidfd.get(), absl::Now() + absl::Seconds(20));
  if (!daemon_ended) {
    ::syscall(SYS_pidfd_send_signal, daemon_pidfd.get(), SIGKILL, nullptr, 0);
  }
  EXPECT_TRUE(daemon_ended) << "the " << method
                            << " daemon outlived its SIGKILLed owner";
}

INSTANTIATE_TEST_SUITE_P(LocalStartMethods, DaemonDiesWithOwnerTest,
                         ::testing::Values("fork", "spawn"));

}  // namespace
}  // namespace forkserver
