// A peer running as another uid is refused by the SO_PEERCRED check, even
// when file modes would let it reach the socket. Needs root (to become
// nobody) and runs unsandboxed (Bazel's sandbox maps only uid 0).

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "proto/wire.pb.h"
#include "tests/raw_client.h"
#include "tests/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::HelloBytes;
using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::testing::HasSubstr;

constexpr uid_t kNobody = 65534;

TEST(PeerUidTest, PeerWithAnotherUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to nobody";
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  const std::string dir =
      info->socket_path.substr(0, info->socket_path.rfind('/'));
  // Open the file modes wide, so that only the uid check stands in the way.
  ASSERT_EQ(::chmod(dir.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(info->socket_path.c_str(), 0666), 0);
  const std::string hello = HelloBytes();
  auto [read_end, write_end] = MakePipe();
  const pid_t helper = ::fork();
  if (helper == 0) {
    // The test process is single-threaded: plain syscalls, then _exit.
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(10);
    int socket = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, info->socket_path.c_str(),
                 sizeof(address.sun_path) - 1);
    if (::connect(socket, reinterpret_cast<sockaddr*>(&address),
                  sizeof(address)) != 0) {
      ::_exit(11);
    }
    (void)::send(socket, hello.data(), hello.size(), MSG_NOSIGNAL);
    char reply[4096];
    ssize_t n;
    while ((n = ::recv(socket, reply, sizeof(reply), 0)) > 0) {
      (void)!::write(write_end.get(), reply, static_cast<size_t>(n));
    }
    ::_exit(0);
  }
  write_end.reset();
  const std::string said = ReadUntilEof(read_end.get());
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  ::chmod(dir.c_str(), 0700);
  ::chmod(info->socket_path.c_str(), 0600);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "helper could not reach the socket";
  wire::ServerMessage reply;
  ASSERT_TRUE(reply.ParseFromString(said));
  ASSERT_TRUE(reply.has_error()) << "a foreign uid got a hello back";
  EXPECT_EQ(reply.error().code(),
            static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(reply.error().message(), HasSubstr("peer uid 65534"));
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->pid, info->pid);
  EXPECT_THAT(after->last_rejection, HasSubstr("peer uid 65534"));
}

}  // namespace
}  // namespace forkserver
