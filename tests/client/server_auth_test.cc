// The client authenticates the fork server before it sends anything
// (issue 7, item 13): the socket's directory is reached without symlinks
// and must be ours with mode 0700, and the peer must run as our uid.
// The fake server of another uid needs root (to become nobody) and runs
// unsandboxed (Bazel's sandbox maps only uid 0).

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "forkserver/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/remote_command.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

constexpr uid_t kNobody = 65534;

class ServerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
    ASSERT_OK(dir.status());
    root_ = *dir;
    ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0700), 0);
  }
  void TearDown() override {
    ASSERT_EQ(std::system(absl::StrCat("rm -rf '", root_, "'").c_str()), 0);
  }
  // A spec whose environment holds a secret a fake server must never see.
  static CommandSpec SecretSpec() {
    CommandSpec spec;
    spec.argv = {"/bin/true"};
    spec.env = std::vector<std::string>{"SECRET=hunter2"};
    return spec;
  }
  static bool Accepted(int listener) {
    UniqueFd connection(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    return connection.valid();
  }
  std::string root_;
};

TEST_F(ServerAuthTest, SymlinkedSocketDirectoryIsRefused) {
  absl::StatusOr<ListeningSocket> real = ListenAt(root_ + "/d/socket");
  ASSERT_OK(real.status());
  ASSERT_EQ(::symlink((root_ + "/d").c_str(), (root_ + "/link").c_str()), 0);
  EXPECT_THAT(RemoteCommand::Start(root_ + "/link/socket", SecretSpec()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("symlink")));
  EXPECT_FALSE(Accepted(real->listener.get())) << "it connected anyway";
}

TEST_F(ServerAuthTest, SocketDirectoryMustBe0700) {
  absl::StatusOr<ListeningSocket> real = ListenAt(root_ + "/d/socket");
  ASSERT_OK(real.status());
  for (mode_t mode : {0755, 0750}) {
    ASSERT_EQ(::chmod((root_ + "/d").c_str(), mode), 0);
    char expected[16];
    std::snprintf(expected, sizeof(expected), "mode %o", mode);
    EXPECT_THAT(RemoteCommand::Start(root_ + "/d/socket", SecretSpec()).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr(expected)));
    EXPECT_FALSE(Accepted(real->listener.get())) << "it connected anyway";
  }
  ASSERT_EQ(::chmod((root_ + "/d").c_str(), 0700), 0);
}

// A listener whose owner is nobody, in our own 0700 directory (bound as
// root, then listen() as nobody: SO_PEERCRED reports the listener's
// credentials): refused before a single byte, the secret never sent.
TEST_F(ServerAuthTest, FakeServerOfAnotherUidIsRefusedBeforeAnyByte) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
  const std::string path = root_ + "/d/socket";
  auto [ready_read, ready_write] = MakePipe();
  auto [report_read, report_write] = MakePipe();
  const pid_t fake = ::fork();
  if (fake == 0) {
    // Single-threaded test process: plain syscalls, then _exit.
    int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address),
               sizeof(address)) != 0) {
      ::_exit(10);
    }
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(11);
    if (::listen(listener, 8) != 0) ::_exit(12);
    (void)!::write(ready_write.get(), "R", 1);
    ::close(ready_write.get());  // EOF for the test's ReadUntilEof.
    ::close(ready_read.get());
    // Count every byte any client sends, until it hangs up (or 10 s).
    long total = 0;
    pollfd pfd{listener, POLLIN, 0};
    if (::poll(&pfd, 1, 10000) == 1) {
      int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      char buffer[65536];
      pollfd in{connection, POLLIN, 0};
      while (::poll(&in, 1, 10000) == 1) {
        const ssize_t n = ::recv(connection, buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        total += n;
      }
    }
    char text[32];
    const int length = std::snprintf(text, sizeof(text), "%ld", total);
    (void)!::write(report_write.get(), text, static_cast<size_t>(length));
    ::_exit(0);
  }
  ready_write.reset();
  report_write.reset();
  ASSERT_EQ(ReadUntilEof(ready_read.get()), "R") << "fake server did not start";

  EXPECT_THAT(RemoteCommand::Start(path, SecretSpec()).status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("uid 65534")));
  const std::string received = ReadUntilEof(report_read.get());
  int status = 0;
  ASSERT_EQ(::waitpid(fake, &status, 0), fake);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "fake server failed: " << status;
  EXPECT_EQ(received, "0") << "bytes reached the fake server";
}

}  // namespace
}  // namespace forkserver
