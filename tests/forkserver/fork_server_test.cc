// The fork server as a service: its socket, its lifetime, its relaunch, and
// what it does with bad clients.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "forkserver/listener.h"
#include "lib/forkserver.h"
#include "lib/ipc/seqpacket.h"
#include "proto/wire.pb.h"
#include "tests/support/raw_client.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::ErrorBeforeClose;
using ::forkserver::testing::HelloBytes;
using ::forkserver::testing::ConnectAndHello;
using ::forkserver::testing::Exchange;
using ::forkserver::testing::MakePipe;
using ::forkserver::testing::RawConnect;
using ::forkserver::testing::RawSend;
using ::forkserver::testing::ReadUntilEof;
using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

FORKSERVER_ENTRY(Sleeper, absl::string_view) {
  while (true) ::pause();
}

FORKSERVER_ENTRY(QuickExit, absl::string_view) { return 0; }

// Launches its own fork server (it is a spawned worker, so the server is
// its own, not the test's), starts a worker there, reports
// "<server pid> <socket path> <worker pid>" on fd 3, and exits.
FORKSERVER_ENTRY(OwnServerProbe, absl::string_view) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  if (!info.ok()) return 1;
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  auto* worker = new Process("Sleeper", "", options);  // Never joined.
  if (!worker->Start().ok()) return 2;
  std::string report =
      absl::StrCat(info->pid, " ", info->socket_path, " ", worker->pid());
  testing::WriteAll(3, report);
  ::_exit(0);  // Without destructors: the worker must die with the server.
}

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

bool BecomesReadable(int fd, absl::Duration timeout) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) ==
         1;
}

ProcessOptions ForkServerOptionsFor() {
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  return options;
}

std::string SocketPath() {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  EXPECT_OK(info.status());
  return info.ok() ? info->socket_path : "";
}

TEST(ForkServerTest, SocketIsPrivate) {
  const std::string path = SocketPath();
  ASSERT_FALSE(path.empty());
  struct stat socket_stat, dir_stat;
  ASSERT_EQ(::stat(path.c_str(), &socket_stat), 0);
  ASSERT_EQ(::stat(path.substr(0, path.rfind('/')).c_str(), &dir_stat), 0);
  EXPECT_TRUE(S_ISSOCK(socket_stat.st_mode));
  EXPECT_EQ(socket_stat.st_mode & 0777, 0600u);
  EXPECT_EQ(dir_stat.st_mode & 0777, 0700u);
  EXPECT_EQ(socket_stat.st_uid, ::geteuid());
  // A filesystem socket, never an abstract one (CVE-2022-42919).
  std::ifstream unix_sockets("/proc/net/unix");
  std::string line;
  bool listed = false;
  while (std::getline(unix_sockets, line)) {
    if (line.find(path) != std::string::npos) listed = true;
    EXPECT_EQ(line.find("@forkserver"), std::string::npos) << line;
  }
  EXPECT_TRUE(listed);
}

TEST(ForkServerTest, TooLongSocketPathIsAClearError) {
  ASSERT_OK(StopForkServer());
  const ForkServerOptions saved = GetForkServerOptions();
  ForkServerOptions options = saved;
  options.runtime_dir = "/tmp/" + std::string(110, 'd');
  SetForkServerOptions(options);
  Process process("QuickExit", "", ForkServerOptionsFor());
  EXPECT_THAT(process.Start(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sun_path")));
  SetForkServerOptions(saved);
  Process works("QuickExit", "", ForkServerOptionsFor());
  ASSERT_OK(works.Start());
  ASSERT_OK(works.Join());
}

TEST(ForkServerTest, ListenerRefusesLongPathsAndOpenDirectories) {
  EXPECT_THAT(CheckSocketPath("/tmp/" + std::string(200, 's')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("at most 107")));
  EXPECT_THAT(CheckSocketPath("relative/socket"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
  ASSERT_OK(dir.status());
  ASSERT_EQ(::chmod(dir->c_str(), 0777), 0);
  EXPECT_THAT(ListenAt(*dir + "/socket").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("mode 777")));
  ASSERT_EQ(::chmod(dir->c_str(), 0700), 0);
  {
    absl::StatusOr<ListeningSocket> first = ListenAt(*dir + "/socket");
    ASSERT_OK(first.status());
    // A second server on the same live socket is refused...
    EXPECT_THAT(ListenAt(*dir + "/socket").status(),
                StatusIs(absl::StatusCode::kAlreadyExists));
  }
  // ...but a stale socket file (nobody listening) is replaced.
  EXPECT_OK(ListenAt(*dir + "/socket").status());
  ::unlink((*dir + "/socket").c_str());
  ::unlink((*dir + "/socket.lock").c_str());
  ::rmdir(dir->c_str());
}

// Kill -9 the server while requests wait for it: every one returns
// UNAVAILABLE (EOF, not the 10 s request timeout), and the next request
// launches a new server.
TEST(ForkServerTest, ServerDeathFailsRequestsInFlightAndRelaunches) {
  absl::StatusOr<ForkServerInfo> before = GetForkServerInfo();
  ASSERT_OK(before.status());
  // Running workers of the doomed server: their Join must fail cleanly and
  // they must not outlive it.
  std::vector<Process> running;
  for (int i = 0; i < 3; ++i) {
    running.emplace_back("Sleeper", "", ForkServerOptionsFor());
    ASSERT_OK(running.back().Start());
  }
  ASSERT_EQ(::kill(before->pid, SIGSTOP), 0);
  constexpr int kInFlight = 8;
  std::vector<absl::Status> results(kInFlight);
  std::vector<std::thread> threads;
  for (int i = 0; i < kInFlight; ++i) {
    threads.emplace_back([&results, i] {
      Process process("QuickExit", "", ForkServerOptionsFor());
      results[i] = process.Start();
      if (results[i].ok()) (void)process.Join();
    });
  }
  // Wait (on a condition, not a guess) until all of them wait on the server.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (internal::PendingServerRequests() < kInFlight &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(internal::PendingServerRequests(), kInFlight);
  ASSERT_EQ(::kill(before->pid, SIGKILL), 0);
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& result : results) {
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable,
                                 HasSubstr("killed by signal 9")));
  }
  for (Process& process : running) {
    EXPECT_TRUE(BecomesReadable(process.sentinel(), absl::Seconds(10)))
        << "worker " << process.pid() << " outlived its server";
    EXPECT_THAT(process.Join(), StatusIs(absl::StatusCode::kUnavailable,
                                         HasSubstr("unknown")));
  }
  running.clear();

  Process next("QuickExit", "", ForkServerOptionsFor());
  ASSERT_OK(next.Start());
  ASSERT_OK(next.Join());
  EXPECT_EQ(next.exitcode(), 0);
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_NE(after->pid, before->pid);
}

// A server that died between requests leaves kept connections behind: the
// next request must not fail on one of them, but relaunch and succeed.
TEST(ForkServerTest, KeptConnectionsToADeadServerAreNotUsed) {
  absl::StatusOr<ForkServerInfo> before = GetForkServerInfo();
  ASSERT_OK(before.status());
  std::vector<Process> workers;
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back("QuickExit", "", ForkServerOptionsFor());
    ASSERT_OK(workers.back().Start());
  }
  for (Process& worker : workers) ASSERT_OK(worker.Join());
  ASSERT_GE(internal::IdleConnectionCount(), 3);
  UniqueFd server(PidfdOpen(before->pid));
  ASSERT_TRUE(server.valid());
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, server.get(), SIGKILL, nullptr, 0), 0);
  ASSERT_TRUE(BecomesReadable(server.get(), absl::Seconds(10)));

  Process next("QuickExit", "", ForkServerOptionsFor());
  ASSERT_OK(next.Start());
  ASSERT_OK(next.Join());
  EXPECT_EQ(next.exitcode(), 0);
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_NE(after->pid, before->pid);
}

TEST(ForkServerTest, SigtermShutsDownGracefully) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  UniqueFd server(PidfdOpen(info->pid));
  Process worker("Sleeper", "", ForkServerOptionsFor());
  ASSERT_OK(worker.Start());
  ASSERT_EQ(::kill(info->pid, SIGTERM), 0);
  // The server TERMs its children and reports their exit before leaving.
  ASSERT_OK(worker.Join());
  EXPECT_EQ(worker.exitcode(), -SIGTERM);
  EXPECT_TRUE(BecomesReadable(server.get(), absl::Seconds(10)));
  struct stat st;
  EXPECT_NE(::stat(info->socket_path.c_str(), &st), 0) << "socket left behind";
}

TEST(ForkServerTest, ServerExitsWhenItsOwnerDoesAndTakesWorkersAlong) {
  auto [read_end, write_end] = MakePipe();
  ProcessOptions options;
  options.start_method = StartMethod::kSpawn;
  options.fds = {{write_end.get(), 3}};
  Process owner("OwnServerProbe", "", options);
  ASSERT_OK(owner.Start());
  write_end.reset();
  std::vector<std::string> report =
      absl::StrSplit(ReadUntilEof(read_end.get()), ' ');
  ASSERT_EQ(report.size(), 3u);
  pid_t server_pid, worker_pid;
  ASSERT_TRUE(absl::SimpleAtoi(report[0], &server_pid));
  ASSERT_TRUE(absl::SimpleAtoi(report[2], &worker_pid));
  UniqueFd server(PidfdOpen(server_pid));
  UniqueFd worker(PidfdOpen(worker_pid));
  ASSERT_OK(owner.Join());
  EXPECT_EQ(owner.exitcode(), 0);
  // If either was gone already, pidfd_open failed: that is fine too.
  if (server) {
    EXPECT_TRUE(BecomesReadable(server.get(), absl::Seconds(10)));
  }
  if (worker) {
    EXPECT_TRUE(BecomesReadable(worker.get(), absl::Seconds(10)));
  }
  struct stat st;
  EXPECT_NE(::stat(report[1].c_str(), &st), 0) << "socket left behind";
  EXPECT_NE(::stat(report[1].substr(0, report[1].rfind('/')).c_str(), &st), 0)
      << "socket directory left behind";
}

struct BadPacketCase {
  std::string name;
  bool hello_first;
  std::string bytes;
  int fd_count;
  std::string expected_error;
};

wire::ClientMessage SpawnMessage() {
  wire::ClientMessage message;
  message.mutable_spawn()->set_kind(wire::SPAWN_KIND_ENTRY);
  message.mutable_spawn()->set_entry("QuickExit");
  return message;
}

std::vector<BadPacketCase> BadPackets() {
  std::vector<BadPacketCase> cases;
  cases.push_back({"garbage", false, "\xff\xff\xff\xff garbage", 0,
                   "undecodable"});
  cases.push_back({"oversized", false, std::string(kMaxPacketBytes + 1, 'x'),
                   0, "exceeds the cap"});
  cases.push_back({"empty message", false, "", 1, "no known content"});
  cases.push_back({"wrong version", false,
                   HelloBytes(static_cast<wire::ProtocolVersion>(7)), 0,
                   "protocol version 7"});
  cases.push_back({"spawn before hello", false,
                   SpawnMessage().SerializeAsString(), 0,
                   "not a hello"});
  cases.push_back({"second hello", true, HelloBytes(), 0, "second hello"});
  {
    wire::ClientMessage message = SpawnMessage();
    message.mutable_spawn()->set_kind(wire::SPAWN_KIND_UNSPECIFIED);
    cases.push_back({"unspecified kind", true, message.SerializeAsString(), 0,
                     "unknown kind"});
  }
  {
    wire::ClientMessage message = SpawnMessage();
    message.mutable_spawn()->add_child_fds(3);
    cases.push_back({"fd count mismatch", true, message.SerializeAsString(),
                     2, "names 1 descriptors but 2"});
  }
  {
    wire::ClientMessage message = SpawnMessage();
    cases.push_back({"too many fds", true, message.SerializeAsString(),
                     kMaxPacketFds + 6, "at most 64"});
  }
  {
    wire::ClientMessage message;
    wire::SpawnRequest& spawn = *message.mutable_spawn();
    spawn.set_kind(wire::SPAWN_KIND_EXEC);
    spawn.mutable_exec()->set_path("/bin/true");
    spawn.mutable_exec()->add_argv(std::string("tr\0ue", 5));
    cases.push_back({"NUL in argv", true, message.SerializeAsString(), 0,
                     "contains a NUL"});
  }
  {
    wire::ClientMessage message;
    wire::SpawnRequest& spawn = *message.mutable_spawn();
    spawn.set_kind(wire::SPAWN_KIND_EXEC);
    spawn.mutable_exec()->set_path("/bin/true");
    spawn.mutable_exec()->add_argv("true");
    spawn.mutable_exec()->add_env("NO_EQUALS_SIGN");
    cases.push_back({"env without =", true, message.SerializeAsString(), 0,
                     "NAME=value"});
  }
  {
    wire::ClientMessage message = SpawnMessage();
    message.mutable_spawn()->set_arg_in_memfd(true);
    cases.push_back({"unsealed arg fd", true, message.SerializeAsString(), 1,
                     "not a memfd sealed"});
  }
  return cases;
}

TEST(ForkServerTest, MalformedPacketsCloseOnlyThatConnection) {
  // Earlier tests' kept connections would count as open at the server;
  // from here on, each status request reuses the one connection.
  CloseIdleConnections();
  absl::StatusOr<ForkServerInfo> baseline = GetForkServerInfo();
  ASSERT_OK(baseline.status());
  // The descriptor baseline with the warm pool full (it refills when idle).
  ASSERT_TRUE(::forkserver::testing::Eventually([&] {
    baseline = GetForkServerInfo();
    return baseline.ok() && baseline->warm_ready == baseline->warm_target;
  }));
  for (const BadPacketCase& bad : BadPackets()) {
    SCOPED_TRACE(bad.name);
    UniqueFd socket = bad.hello_first ? ConnectAndHello(baseline->socket_path)
                                      : RawConnect(baseline->socket_path);
    RawSend(socket.get(), bad.bytes, bad.fd_count);
    EXPECT_THAT(ErrorBeforeClose(socket.get()), HasSubstr(bad.expected_error));
    absl::StatusOr<ForkServerInfo> now = GetForkServerInfo();
    ASSERT_OK(now.status());
    EXPECT_EQ(now->pid, baseline->pid) << "the server restarted";
    EXPECT_THAT(now->last_rejection, HasSubstr(bad.expected_error));
  }
  // Every descriptor that came with a bad packet is closed, and so is the
  // last bad connection (its close may reach the server after a status
  // request on our kept connection does): only this status request's own
  // connection is left.
  absl::StatusOr<ForkServerInfo> after;
  EXPECT_TRUE(::forkserver::testing::Eventually([&] {
    after = GetForkServerInfo();
    return after.ok() && after->open_fds == baseline->open_fds &&
           after->open_connections == 1;
  })) << (after.ok() ? absl::StrCat("server fds ", after->open_fds, " (baseline ",
                                     baseline->open_fds, "), connections ",
                                     after->open_connections)
                      : after.status().ToString());
  ASSERT_OK(after.status());
  EXPECT_EQ(after->pid, baseline->pid);
  EXPECT_EQ(after->rejected_total - baseline->rejected_total,
            static_cast<int64_t>(BadPackets().size()));
  Process process("QuickExit", "", ForkServerOptionsFor());
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
}

TEST(ForkServerTest, IdleConnectionIsDroppedAfterTheRequestTimeout) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  UniqueFd socket = RawConnect(info->socket_path);
  // Say nothing: the server gives up after its 5 s request timeout.
  EXPECT_THAT(ErrorBeforeClose(socket.get()), HasSubstr("no complete request"));
}

TEST(ForkServerTest, DaemonChildDiesWhenItsConnectionCloses) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  for (bool daemon : {true, false}) {
    SCOPED_TRACE(daemon ? "daemon" : "not daemon");
    UniqueFd socket = ConnectAndHello(info->socket_path);
    wire::ClientMessage message;
    message.mutable_spawn()->set_kind(wire::SPAWN_KIND_ENTRY);
    message.mutable_spawn()->set_entry("Sleeper");
    message.mutable_spawn()->set_kill_on_disconnect(daemon);
    UniqueFd pidfd;
    ASSERT_TRUE(Exchange(socket.get(), message, &pidfd).has_spawned());
    ASSERT_TRUE(pidfd.valid());
    socket.reset();
    if (daemon) {
      EXPECT_TRUE(BecomesReadable(pidfd.get(), absl::Seconds(10)));
    } else {
      // Give a wrongful kill every chance to show, then clean up.
      EXPECT_FALSE(BecomesReadable(pidfd.get(), absl::Milliseconds(300)));
      ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
      EXPECT_TRUE(BecomesReadable(pidfd.get(), absl::Seconds(10)));
    }
  }
}

// Found in the split: a client that left before its "spawned" reply (or a
// reply that could not be sent) left a child running that nobody knew of,
// unless it was a daemon. Now it is killed (it did not ask to survive).
TEST(ForkServerTest, ChildWhoseClientNeverLearnedOfItIsKilled) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  ASSERT_EQ(info->live_children, 0);
  UniqueFd socket = ConnectAndHello(info->socket_path);
  // This client will never read the reply: shutting our receiving side
  // makes the server's send of the pid fail (EPIPE), every time. (Merely
  // closing after the send raced the reply: a reply queued before the
  // close counts as announced, and the child rightly ran on.)
  ASSERT_EQ(::shutdown(socket.get(), SHUT_RD), 0);
  wire::ClientMessage message;
  message.mutable_spawn()->set_kind(wire::SPAWN_KIND_ENTRY);
  message.mutable_spawn()->set_entry("Sleeper");
  message.mutable_spawn()->set_kill_on_disconnect(false);
  ASSERT_OK(SendPacket(socket.get(), message.SerializeAsString()));
  socket.reset();
  // Spawned (counted), then killed and reaped.
  EXPECT_TRUE(::forkserver::testing::Eventually([&] {
    absl::StatusOr<ForkServerInfo> now = GetForkServerInfo();
    return now.ok() && now->spawned_total == info->spawned_total + 1 &&
           now->live_children == 0;
  }, absl::Seconds(10))) << "the unannounced child still runs";
}

TEST(ForkServerTest, ExecKindRunsProgramsAndReportsSetupFailures) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  auto run = [&](const std::string& path, const std::string& cwd,
                 wire::ServerMessage* first, wire::ServerMessage* second) {
    UniqueFd socket = ConnectAndHello(info->socket_path);
    wire::ClientMessage message;
    wire::SpawnRequest& spawn = *message.mutable_spawn();
    spawn.set_kind(wire::SPAWN_KIND_EXEC);
    spawn.mutable_exec()->set_path(path);
    spawn.mutable_exec()->add_argv("sh");
    spawn.mutable_exec()->add_argv("-c");
    spawn.mutable_exec()->add_argv("exit 5");
    spawn.mutable_exec()->set_cwd(cwd);
    *first = Exchange(socket.get(), message);
    Packet packet;
    absl::Status received =
        ReceivePacket(socket.get(), absl::Now() + absl::Seconds(10), &packet);
    if (received.ok()) {
      ASSERT_TRUE(second->ParseFromString(packet.bytes));
    }
  };
  wire::ServerMessage first, second;
  run("/bin/sh", "", &first, &second);
  ASSERT_TRUE(first.has_spawned());
  ASSERT_TRUE(second.has_exited());
  EXPECT_EQ(second.exited().exit_code(), 5);

  first.Clear();
  run("/no/such/program", "", &first, &second);
  ASSERT_TRUE(first.has_error());
  EXPECT_EQ(first.error().step(), "execve");
  EXPECT_EQ(first.error().errno_value(), ENOENT);
  EXPECT_EQ(first.error().code(), static_cast<int>(absl::StatusCode::kNotFound));

  first.Clear();
  run("/bin/sh", "/no/such/directory", &first, &second);
  ASSERT_TRUE(first.has_error());
  EXPECT_EQ(first.error().step(), "chdir");
}

}  // namespace
}  // namespace forkserver
