// The standalone daemon and its CLI, as a user runs them: forkserverd
// launches programs for RemoteCommand and forkserverctl.

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include "absl/strings/str_cat.h"
#include "forkserver/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/fork_server_client.h"
#include "lib/remote_command.h"
#include "tests/subprocess.h"
#include "tests/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = MakePrivateDirectory("/tmp");
    ASSERT_OK(dir.status());
    dir_ = *dir;
    socket_ = dir_ + "/run/socket";  // forkserverd makes run/ (0700).
    absl::StatusOr<std::unique_ptr<testing::Background>> daemon =
        testing::Background::Start(testing::RunfilesPath("tools/forkserverd"),
                                   {absl::StrCat("--socket=", socket_)});
    ASSERT_OK(daemon.status());
    daemon_ = *std::move(daemon);
    // Ready when it answers (a condition, polled; not a guess).
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!internal::ConnectToSocket(socket_).ok()) {
      ASSERT_LT(absl::Now(), deadline) << "forkserverd did not come up";
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  void TearDown() override {
    daemon_.reset();
    ::unlink(socket_.c_str());
    ::rmdir((dir_ + "/run").c_str());
    ::rmdir(dir_.c_str());
  }

  absl::StatusOr<testing::Output> Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), absl::StrCat("--socket=", socket_));
    return testing::RunProgram(testing::RunfilesPath("tools/forkserverctl"),
                               args);
  }

  std::string dir_, socket_;
  std::unique_ptr<testing::Background> daemon_;
};

TEST_F(ToolsTest, RemoteCommandRunsProgramsWithOurDescriptors) {
  auto [read_end, write_end] = testing::MakePipe();
  CommandSpec spec;
  spec.argv = {"sh", "-c", "echo from $0; exit 7", "the daemon"};
  spec.fds = {{write_end.get(), 1}};
  absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
  ASSERT_OK(command.status());
  write_end.reset();
  EXPECT_EQ(testing::ReadUntilEof(read_end.get()), "from the daemon\n");
  EXPECT_EQ(*command->Wait(), 7);

  spec.argv = {"sh", "-c", "kill -9 $$"};
  spec.fds = {};
  absl::StatusOr<RemoteCommand> killed = RemoteCommand::Start(socket_, spec);
  ASSERT_OK(killed.status());
  EXPECT_EQ(*killed->Wait(), -SIGKILL);
}

TEST_F(ToolsTest, FailuresAreClear) {
  CommandSpec spec;
  spec.argv = {"/no/such/program"};
  EXPECT_THAT(RemoteCommand::Start(socket_, spec).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("step 'execve' failed")));
  spec.argv = {"true"};
  spec.cwd = "/no/such/directory";
  EXPECT_THAT(RemoteCommand::Start(socket_, spec).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'chdir'")));
  spec.argv = {"surely-not-a-program-anywhere"};
  spec.cwd = "";
  EXPECT_THAT(RemoteCommand::Start(socket_, spec).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("$PATH")));
  spec.argv = {"true"};
  EXPECT_THAT(RemoteCommand::Start(dir_ + "/nobody-here", spec).status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(ToolsTest, CtlRunsStatusAndBench) {
  absl::StatusOr<testing::Output> run =
      Ctl({"run", "--", "sh", "-c", "echo hi; exit 3"});
  ASSERT_OK(run.status());
  EXPECT_EQ(run->exit_code, 3);
  EXPECT_EQ(run->stdout_text, "hi\n");
  absl::StatusOr<testing::Output> status = Ctl({"status"});
  ASSERT_OK(status.status());
  EXPECT_EQ(status->exit_code, 0);
  EXPECT_THAT(status->stdout_text,
              HasSubstr(absl::StrCat("pid ", daemon_->pid())));
  absl::StatusOr<testing::Output> bench =
      Ctl({"bench", "--n=5", "--", "true"});
  ASSERT_OK(bench.status());
  EXPECT_EQ(bench->exit_code, 0);
  EXPECT_THAT(bench->stdout_text, HasSubstr("through forkserverd"));
}

TEST_F(ToolsTest, SigtermStopsTheDaemonAndItsPrograms) {
  CommandSpec spec;
  spec.argv = {"sleep", "60"};
  spec.fds = {};
  absl::StatusOr<RemoteCommand> sleeper = RemoteCommand::Start(socket_, spec);
  ASSERT_OK(sleeper.status());
  absl::StatusOr<int> daemon_exit = daemon_->Stop(SIGTERM, absl::Seconds(30));
  ASSERT_OK(daemon_exit.status());
  EXPECT_EQ(*daemon_exit, 0);
  EXPECT_EQ(*sleeper->Wait(), -SIGTERM);  // Told before the daemon left.
  struct stat st;
  EXPECT_NE(::stat(socket_.c_str(), &st), 0) << "socket left behind";
}

}  // namespace
}  // namespace forkserver
