// RemoteCommand reuses its connection to forkserverd between requests
// (lib/client/connection_cache.h), and a dead daemon still fails every
// request promptly: between requests (the kept connection is seen closed
// before anything is sent; the next request reconnects or is UNAVAILABLE)
// and during one (EOF: UNAVAILABLE, not a hang).

#include <poll.h>

#include <csignal>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "forkserver/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/connection_cache.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/remote_command.h"
#include "lib/ipc/seqpacket.h"
#include "tests/support/forkserverd.h"
#include "tests/support/raw_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

class ConnectionReuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
    ASSERT_OK(dir.status());
    dir_ = *dir;
    socket_ = dir_ + "/socket";
    StartDaemon();
  }

  void TearDown() override {
    internal::DropIdleConnections(socket_);
    daemon_.reset();
    ::unlink(socket_.c_str());
    ::rmdir(dir_.c_str());
  }

  void StartDaemon() {
    absl::StatusOr<std::unique_ptr<testing::Background>> daemon =
        testing::StartForkserverd(socket_);
    ASSERT_OK(daemon.status());
    daemon_ = *std::move(daemon);
  }

  // The daemon's count of accepted connections (a fresh connection of
  // its own, counted too).
  int64_t Accepted() {
    absl::StatusOr<internal::ServerConnection> connection =
        internal::ConnectToSocket(socket_);
    EXPECT_OK(connection.status());
    if (!connection.ok()) return -1;
    wire::ClientMessage request;
    request.mutable_status();
    absl::StatusOr<internal::ServerReply> reply = connection->Request(request);
    EXPECT_OK(reply.status());
    return reply.ok() ? reply->message.status().accepted_total() : -1;
  }

  absl::StatusOr<int> RunCommand(std::vector<std::string> argv) {
    CommandSpec spec;
    spec.argv = std::move(argv);
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
    if (!command.ok()) return command.status();
    return command->Wait(absl::Seconds(30));
  }

  std::string dir_, socket_;
  std::unique_ptr<testing::Background> daemon_;
};

TEST_F(ConnectionReuseTest, SequentialRequestsShareOneConnection) {
  const int64_t before = Accepted();
  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    absl::StatusOr<int> code = RunCommand({"/bin/sh", "-c", absl::StrCat("exit ", i)});
    ASSERT_OK(code.status()) << "request " << i;
    EXPECT_EQ(*code, i);
  }
  // One connection for all 20 requests, plus the status request's own.
  EXPECT_EQ(Accepted() - before, 2);
  EXPECT_EQ(internal::IdleConnectionCount(), 1);
}

TEST_F(ConnectionReuseTest, AFailedLaunchDoesNotBreakTheNextOne) {
  EXPECT_THAT(RunCommand({"/no/such/program"}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'execve'")));
  EXPECT_EQ(*RunCommand({"/bin/true"}), 0);
  EXPECT_EQ(*RunCommand({"/bin/true"}), 0);
}

TEST_F(ConnectionReuseTest, DaemonKilledBetweenRequestsThenReconnects) {
  ASSERT_EQ(*RunCommand({"/bin/true"}), 0);
  ASSERT_EQ(internal::IdleConnectionCount(), 1);
  EXPECT_EQ(*daemon_->Stop(SIGKILL, absl::Seconds(30)), -SIGKILL);
  // The kept connection is closed now; it is dropped, not written to, and
  // with nobody listening the request is UNAVAILABLE, saying where.
  EXPECT_THAT(RunCommand({"/bin/true"}).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(socket_)));
  EXPECT_EQ(internal::IdleConnectionCount(), 0);
  // A new daemon on the same path: the next request connects to it.
  ::unlink(socket_.c_str());
  StartDaemon();
  EXPECT_EQ(*RunCommand({"/bin/sh", "-c", "exit 4"}), 4);
}

TEST_F(ConnectionReuseTest, DaemonKilledDuringARequestIsUnavailable) {
  ASSERT_EQ(*RunCommand({"/bin/true"}), 0);  // Leaves a connection to reuse.
  CommandSpec spec;
  spec.argv = {"sleep", "60"};
  absl::StatusOr<RemoteCommand> sleeper = RemoteCommand::Start(socket_, spec);
  ASSERT_OK(sleeper.status());
  EXPECT_EQ(internal::IdleConnectionCount(), 0);  // The sleeper has it.
  EXPECT_EQ(*daemon_->Stop(SIGKILL, absl::Seconds(30)), -SIGKILL);
  // EOF on the request's connection: the wait ends with UNAVAILABLE long
  // before its bound, never DEADLINE_EXCEEDED.
  EXPECT_THAT(sleeper->Wait(absl::Seconds(60)).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("exit status of pid")));
  // The program died with the daemon (parent-death signal).
  EXPECT_TRUE(testing::Eventually([&] {
    pollfd pfd{sleeper->sentinel(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 1;
  }));
}

// Outside attack: on a kept connection, a signal_group that crossed its
// child's exit notice (RemoteCommand::Signal racing the exit) was refused
// as "a second hello" and the connection closed. It is a no-op now; the
// connection serves the next request.
TEST_F(ConnectionReuseTest, ASignalThatCrossedTheExitNoticeKeepsTheConnection) {
  UniqueFd socket = testing::RawConnect(socket_);
  wire::ClientMessage hello;
  hello.mutable_hello()->set_version(wire::PROTOCOL_VERSION_1);
  hello.mutable_hello()->set_keep_alive(true);
  ASSERT_TRUE(testing::Exchange(socket.get(), hello).hello().keep_alive());
  wire::ClientMessage spawn;
  spawn.mutable_spawn()->set_kind(wire::SPAWN_KIND_EXEC);
  spawn.mutable_spawn()->mutable_exec()->set_path("/bin/true");
  spawn.mutable_spawn()->mutable_exec()->add_argv("true");
  ASSERT_TRUE(testing::Exchange(socket.get(), spawn).has_spawned());
  Packet notice;
  ASSERT_OK(ReceivePacket(socket.get(), absl::Now() + absl::Seconds(30), &notice));
  wire::ServerMessage exited;
  ASSERT_TRUE(exited.ParseFromString(notice.bytes));
  ASSERT_TRUE(exited.has_exited()) << exited.DebugString();
  // The client's signal, sent before it read that notice.
  wire::ClientMessage signal;
  signal.mutable_signal_group()->set_signal(SIGTERM);
  ASSERT_OK(SendPacket(socket.get(), signal.SerializeAsString()));
  wire::ClientMessage status;
  status.mutable_status();
  wire::ServerMessage reply = testing::Exchange(socket.get(), status);
  EXPECT_TRUE(reply.has_status()) << reply.DebugString();
}

}  // namespace
}  // namespace forkserver
