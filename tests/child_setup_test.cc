// The child-setup steps and the spawner, driven directly.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "forkserver/child_setup.h"
#include "forkserver/spawner.h"
#include "tests/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

int Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

absl::Status RunExec(const char* path, const char* cwd = nullptr) {
  static char arg0[] = "child";
  static char* argv[] = {arg0, nullptr};
  static char* envp[] = {nullptr};
  ChildSetupPlan plan;
  plan.exec_path = path;
  plan.exec_argv = argv;
  plan.exec_envp = envp;
  plan.cwd = cwd;
  absl::StatusOr<ForkedChild> child = ForkChild(plan);
  if (!child.ok()) return child.status();
  absl::Status setup =
      AwaitChildSetup(child->report.get(), absl::Now() + absl::Seconds(30));
  Reap(child->pid);
  return setup;
}

TEST(ChildSetupTest, ExecFailureNamesTheStep) {
  EXPECT_THAT(RunExec("/no/such/program"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("step 'execve' failed")));
  EXPECT_THAT(RunExec("/bin/true", "/no/such/dir"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("step 'chdir' failed")));
  EXPECT_OK(RunExec("/bin/true"));
}

}  // namespace
}  // namespace forkserver
