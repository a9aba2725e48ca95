// Issue 7, item 21: `forkserverctl run` behaves like a shell's exec: the
// caller's working directory (not the daemon's), the program looked up on
// the caller's side, 127 for a program not found and 126 for one that
// cannot be executed (reason on stderr); `status --json`.

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "forkserver/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/fork_server_client.h"
#include "tests/support/forkserverd.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_util.h"

extern char** environ;

namespace forkserver {
namespace {

using ::testing::HasSubstr;

struct Ran {
  int exit_code = -1;
  std::string out, err;
};

// Runs forkserverctl with `args` in working directory `cwd`, with $PATH
// replaced by `path` when it is not empty.
Ran RunCtlIn(const std::string& cwd, const std::vector<std::string>& args,
             const std::string& path = "") {
  auto [out_read, out_write] = testing::MakePipe();
  auto [err_read, err_write] = testing::MakePipe();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  const std::string ctl = testing::RunfilesPath("tools/forkserverctl");
  std::vector<std::string> strings = {ctl};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!path.empty() && std::string(*e).rfind("PATH=", 0) == 0) continue;
    env_strings.emplace_back(*e);
  }
  if (!path.empty()) env_strings.push_back("PATH=" + path);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  Ran ran;
  if (::posix_spawn(&pid, ctl.c_str(), &actions, nullptr, argv.data(),
                    envp.data()) != 0) {
    return ran;
  }
  posix_spawn_file_actions_destroy(&actions);
  out_write.reset();
  err_write.reset();
  ran.out = testing::ReadUntilEof(out_read.get());
  ran.err = testing::ReadUntilEof(err_read.get());
  int status = 0;
  ::waitpid(pid, &status, 0);
  ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return ran;
}

class CtlRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
    ASSERT_OK(dir.status());
    dir_ = *dir;
    socket_ = dir_ + "/run/socket";
    absl::StatusOr<std::unique_ptr<testing::Background>> daemon =
        testing::StartForkserverd(socket_);
    ASSERT_OK(daemon.status());
    daemon_ = *std::move(daemon);
    work_ = dir_ + "/work";
    ASSERT_EQ(::mkdir(work_.c_str(), 0700), 0);
  }

  void TearDown() override {
    daemon_.reset();
    for (const char* name : {"tool", "plain"}) {
      ::unlink(absl::StrCat(work_, "/", name).c_str());
    }
    ::rmdir(work_.c_str());
    ::unlink(socket_.c_str());
    ::rmdir((dir_ + "/run").c_str());
    ::rmdir(dir_.c_str());
  }

  void MakeFile(const std::string& name, const std::string& text, int mode) {
    const std::string path = absl::StrCat(work_, "/", name);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::WriteAll(fd, text));
    ::close(fd);
  }

  std::string Socket() const { return absl::StrCat("--socket=", socket_); }

  std::string dir_, socket_, work_;
  std::unique_ptr<testing::Background> daemon_;
};

TEST_F(CtlRunTest, RunsInTheCallersWorkingDirectory) {
  Ran ran = RunCtlIn(work_, {Socket(), "run", "--", "pwd"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, work_ + "\n");
  // --cwd still wins, and a relative one is the caller's relative one.
  ran = RunCtlIn(dir_, {Socket(), "run", "--cwd=work", "--", "pwd"});
  EXPECT_EQ(ran.out, work_ + "\n") << ran.err;
}

TEST_F(CtlRunTest, RelativeProgramsAreTheCallers) {
  MakeFile("tool", "#!/bin/sh\necho tool ran\n", 0755);
  Ran ran = RunCtlIn(work_, {Socket(), "run", "--", "./tool"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "tool ran\n");
  // Looked up in the caller's $PATH.
  ran = RunCtlIn(dir_, {Socket(), "run", "--", "tool"}, work_ + ":/usr/bin:/bin");
  EXPECT_EQ(ran.out, "tool ran\n") << ran.err;
}

TEST_F(CtlRunTest, NotFoundExits127) {
  Ran ran = RunCtlIn(work_, {Socket(), "run", "--", "/no/such/program"});
  EXPECT_EQ(ran.exit_code, 127);
  EXPECT_THAT(ran.err, HasSubstr("No such file or directory"));
  ran = RunCtlIn(work_, {Socket(), "run", "--", "surely-not-a-program-xyz"});
  EXPECT_EQ(ran.exit_code, 127);
  EXPECT_THAT(ran.err, HasSubstr("not in $PATH"));
}

TEST_F(CtlRunTest, NotExecutableExits126) {
  MakeFile("plain", "just text\n", 0644);
  Ran ran = RunCtlIn(work_, {Socket(), "run", "--", "./plain"});
  EXPECT_EQ(ran.exit_code, 126);
  EXPECT_THAT(ran.err, HasSubstr("Permission denied"));
  ran = RunCtlIn(dir_, {Socket(), "run", "--", "plain"}, work_);
  EXPECT_EQ(ran.exit_code, 126);
  EXPECT_THAT(ran.err, HasSubstr("not executable"));
}

TEST_F(CtlRunTest, StatusJson) {
  Ran ran = RunCtlIn(work_, {Socket(), "status", "--json"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_THAT(ran.out, ::testing::StartsWith("{"));
  EXPECT_THAT(ran.out, ::testing::EndsWith("}\n"));
  EXPECT_THAT(ran.out,
              HasSubstr(absl::StrCat("\"server_pid\": ", daemon_->pid(), ",")));
  for (const char* field : {"uptime_usec", "live_children", "spawned_total",
                            "open_connections", "open_fds", "rejected_total",
                            "last_rejection", "warm_target", "warm_hits"}) {
    EXPECT_THAT(ran.out, HasSubstr(absl::StrCat("\"", field, "\": ")));
  }
}

}  // namespace
}  // namespace forkserver
