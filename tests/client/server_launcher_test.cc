// Issue 7, item 18: the fork server is launched from an application that
// may be threaded, so only async-signal-safe code may run in the child
// between fork() and execve. The launch goes through forkserver/child's
// exec-mode path: a failed exec is reported as {step, errno}, and the
// child _exit()s without running the application's atexit handlers.

#include "lib/client/server_launcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "forkserver/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/registry/program.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

LaunchOptions DefaultOptions() {
  LaunchOptions options;
  options.runtime_dir = "/tmp";
  options.start_timeout = absl::Seconds(60);
  options.application_args = MainArgs();
  return options;
}

// Some threads that are simply there, as in a real application.
class BusyThreads {
 public:
  explicit BusyThreads(int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] { stop_.WaitForNotification(); });
    }
  }
  ~BusyThreads() {
    stop_.Notify();
    for (std::thread& thread : threads_) thread.join();
  }

 private:
  absl::Notification stop_;
  std::vector<std::thread> threads_;
};

TEST(ServerLauncherTest, LaunchesFromAThreadedProcess) {
  BusyThreads threads(4);
  ASSERT_GE(testing::ThreadCount(), 5);
  absl::StatusOr<std::unique_ptr<LaunchedServer>> server =
      LaunchedServer::Launch(DefaultOptions());
  ASSERT_OK(server.status());
  EXPECT_FALSE((*server)->Exited());
  struct stat st;
  EXPECT_EQ(::lstat((*server)->socket_path().c_str(), &st), 0);
  (*server)->RequestShutdown();
  EXPECT_TRUE((*server)->WaitForExit(absl::Now() + absl::Seconds(30)));
  EXPECT_EQ((*server)->DescribeExit(), "exited with code 0");
}

// Set before the launch; the atexit handler writes it only in a process
// other than the test's own, i.e. in a child that ran exit() instead of
// _exit().
char marker_path[256];
pid_t test_pid = 0;

void WriteMarkerInAChild() {
  if (::getpid() == test_pid) return;
  const int fd = ::open(marker_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
}

TEST(ServerLauncherTest, FailedExecReportsStepAndRunsNoAtexitHandlers) {
  absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
  ASSERT_OK(dir.status());
  const std::string not_executable = *dir + "/not-executable";
  const int fd = ::open(not_executable.c_str(),
                        O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string marker = *dir + "/atexit-ran";
  std::snprintf(marker_path, sizeof(marker_path), "%s", marker.c_str());
  test_pid = ::getpid();
  ASSERT_EQ(std::atexit(WriteMarkerInAChild), 0);

  BusyThreads threads(3);
  LaunchOptions options = DefaultOptions();
  options.executable = not_executable;
  absl::StatusOr<std::unique_ptr<LaunchedServer>> server =
      LaunchedServer::Launch(options);
  EXPECT_THAT(server.status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       ::testing::AllOf(HasSubstr("'execve'"),
                                        HasSubstr(std::strerror(EACCES)))));
  // Launch reaped the failed child before returning.
  struct stat st;
  EXPECT_NE(::lstat(marker.c_str(), &st), 0)
      << "the failed child ran the application's atexit handlers";
  ::unlink(not_executable.c_str());
  ::unlink(marker.c_str());
  ::rmdir(dir->c_str());
}

}  // namespace
}  // namespace forkserver
