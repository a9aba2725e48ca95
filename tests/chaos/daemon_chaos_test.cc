// Chaos against the real daemon (tools/forkserverd) as a separate process:
// faults injected from outside, hostile and careless clients, and after
// every case the harness's invariants (tests/chaos/chaos_harness.h).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/remote_command.h"
#include "lib/ipc/seqpacket.h"
#include "proto/wire.pb.h"
#include "tests/chaos/chaos_harness.h"
#include "tests/support/lingering_socket.h"
#include "tests/support/raw_client.h"
#include "tests/support/raw_send.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace chaos {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uid_t kNobody = 65534;

CommandSpec Sleeper(const std::string& seconds) {
  CommandSpec spec;
  spec.argv = {"/bin/sleep", seconds};
  spec.fds = {};
  return spec;
}

// Waits until no process runs with `argument`; what is left otherwise.
std::vector<pid_t> WaitNoneWith(const std::string& argument, absl::Time deadline) {
  std::vector<pid_t> left = ProcessesWithArgument(argument);
  while (!left.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    left = ProcessesWithArgument(argument);
  }
  return left;
}

// ---------------------------------------------------------------------------
// Server death and freezes.

// Matrix row 6 / design decision 10: a dead server means EOF, never a hang,
// and PR_SET_PDEATHSIG leaves no orphans.
TEST_F(ChaosTest, ServerSigkilledWith32RequestsInFlight) {
  const std::string seconds = UniqueSleepSeconds(600);
  std::vector<RemoteCommand> running;
  for (int i = 0; i < 32; ++i) {
    ledger_.Sent();
    absl::StatusOr<RemoteCommand> command =
        RemoteCommand::Start(socket_, Sleeper(seconds));
    ASSERT_OK(command.status());
    running.push_back(*std::move(command));
  }
  // The "spawned" reply comes once each program is past execve's point
  // of no return (forkserver/child/vfork_exec.cc); its new command line is
  // in /proc a moment later.
  ASSERT_TRUE(testing::Eventually(
      [&] { return ProcessesWithArgument(seconds).size() == 32u; }))
      << ProcessesWithArgument(seconds).size() << " of 32 sleepers seen";
  GlobalFigures().faults++;
  const absl::Time killed = absl::Now();
  daemon_->Signal(SIGKILL);
  const absl::Time deadline = killed + absl::Seconds(1);
  absl::Duration slowest;
  for (RemoteCommand& command : running) {
    absl::StatusOr<int> exit = command.Wait(
        std::max(absl::ZeroDuration(), deadline - absl::Now()));
    slowest = std::max(slowest, absl::Now() - killed);
    if (absl::IsUnavailable(exit.status())) {
      ledger_.Settled();
    } else {
      ledger_.Hung(absl::StrCat("pid ", command.pid(), ": ",
                                exit.ok() ? absl::StrCat("exit ", *exit)
                                          : exit.status().ToString()));
    }
  }
  EXPECT_LE(slowest, absl::Seconds(1));
  std::vector<pid_t> orphans = WaitNoneWith(seconds, killed + absl::Seconds(2));
  EXPECT_TRUE(orphans.empty()) << "orphans still running 2 s after the kill: "
                               << absl::StrJoin(orphans, " ");
  // The stale socket file must not block a new daemon on the same path.
  RestartDaemon();
}

// Matrix row 7: requests made while the server is stopped either complete
// after SIGCONT (their deadline is longer than the stop) or fail cleanly
// with DEADLINE_EXCEEDED on time (a stop longer than their deadline).
TEST_F(ChaosTest, SigstopAndSigcontOfTheServer) {
  struct Outcome {
    absl::Status status;
    absl::Duration took;
  };
  auto run_while_stopped = [&](int n, absl::Duration stop_for) {
    std::vector<Outcome> outcomes(n);
    GlobalFigures().faults++;
    daemon_->Signal(SIGSTOP);
    EXPECT_TRUE(WaitState(daemon_->pid(), 'T', absl::Now() + absl::Seconds(5)));
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      ledger_.Sent();
      threads.emplace_back([this, i, &outcomes] {
        const absl::Time start = absl::Now();
        CommandSpec spec;
        spec.argv = {"/bin/true"};
        spec.fds = {};
        absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
        absl::Status status = command.status();
        if (command.ok()) {
          absl::StatusOr<int> exit = command->Wait(absl::Seconds(10));
          status = exit.ok() && *exit != 0
                       ? absl::InternalError(absl::StrCat("exit ", *exit))
                       : exit.status();
        }
        outcomes[i] = {status, absl::Now() - start};
      });
    }
    absl::SleepFor(stop_for);  // The fault's length, not a synchronisation.
    EXPECT_EQ(ProcessState(daemon_->pid()), 'T');
    daemon_->Signal(SIGCONT);
    for (std::thread& thread : threads) thread.join();
    return outcomes;
  };

  // A stop shorter than the request timeout (10 s): all complete.
  for (const Outcome& outcome : run_while_stopped(8, absl::Seconds(2))) {
    EXPECT_OK(outcome.status);
    if (outcome.status.ok()) {
      ledger_.Settled();
    } else {
      ledger_.Hung(outcome.status.ToString());
    }
  }
  // A stop of twice the request timeout: DEADLINE_EXCEEDED, on time.
  ForkServerOptions options = GetForkServerOptions();
  const ForkServerOptions saved = options;
  options.request_timeout = absl::Seconds(1);
  SetForkServerOptions(options);
  for (const Outcome& outcome : run_while_stopped(8, absl::Seconds(2))) {
    EXPECT_THAT(outcome.status, StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_LT(outcome.took, absl::Milliseconds(1800)) << outcome.status;
    if (absl::IsDeadlineExceeded(outcome.status)) {
      ledger_.Settled();
    } else {
      ledger_.Hung(outcome.status.ToString());
    }
  }
  SetForkServerOptions(saved);
}

// Issue 7 item 2: SIGTERM to the daemon with a child that ignores SIGTERM:
// the client gets the real status (SIGKILL, 137 in shell terms), not "exit
// status unknown".
TEST_F(ChaosTest, SigtermToTheDaemonReportsChildrenThatIgnoredIt) {
  const std::string seconds = UniqueSleepSeconds(600);
  auto [ready_read, ready_write] = testing::MakePipe();
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", "trap '' TERM; echo ready; exec /bin/sleep $0",
               seconds};
  spec.fds = {{ready_write.get(), 1}};
  ledger_.Sent();
  absl::StatusOr<RemoteCommand> stubborn = RemoteCommand::Start(socket_, spec);
  ASSERT_OK(stubborn.status());
  ready_write.reset();
  ASSERT_EQ(ReadAvailable(ready_read.get(), absl::Now() + absl::Seconds(10)),
            "ready\n");
  GlobalFigures().faults++;
  daemon_->Signal(SIGTERM);
  absl::StatusOr<int> daemon_exit = daemon_->WaitExit(absl::Seconds(5));
  EXPECT_OK(daemon_exit.status());
  if (daemon_exit.ok()) {
    EXPECT_EQ(*daemon_exit, 0) << daemon_log();
  }
  absl::StatusOr<int> exit = stubborn->Wait(absl::Seconds(5));
  EXPECT_THAT(exit, testing::IsOk()) << "the client was not told how it ended";
  if (exit.ok()) {
    EXPECT_EQ(*exit, -SIGKILL);
    ledger_.Settled();
  } else {
    ledger_.Hung(exit.status().ToString());
  }
  EXPECT_TRUE(WaitNoneWith(seconds, absl::Now() + absl::Seconds(2)).empty());
  RestartDaemon();
}

// ---------------------------------------------------------------------------
// Exhaustion.

// Matrix row 9: out of descriptors the server says RESOURCE_EXHAUSTED
// (issue 7 item 4: not "INTERNAL: install_fds"), keeps serving others, and
// recovers once descriptors free up.
TEST_F(ChaosTest, FdExhaustionIsResourceExhaustedThenRecovers) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "sanitizer runtimes need spare descriptors themselves";
#endif
  rlimit saved;
  ASSERT_EQ(::prlimit(daemon_->pid(), RLIMIT_NOFILE, nullptr, &saved), 0);
  rlimit low{48, saved.rlim_max};
  GlobalFigures().faults++;
  ASSERT_EQ(::prlimit(daemon_->pid(), RLIMIT_NOFILE, &low, nullptr), 0)
      << std::strerror(errno);
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  const std::string seconds = UniqueSleepSeconds(600);
  std::vector<RemoteCommand> held;
  absl::Status refusal;
  for (int i = 0; i < 100 && refusal.ok(); ++i) {
    CommandSpec spec = Sleeper(seconds);
    // As forkserverctl run does: three descriptors for the child.
    spec.fds = {{null_fd.get(), 0}, {null_fd.get(), 1}, {null_fd.get(), 2}};
    ledger_.Sent();
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
    if (command.ok()) {
      held.push_back(*std::move(command));
      ledger_.Settled();
    } else {
      refusal = command.status();
      if (absl::IsResourceExhausted(refusal)) {
        ledger_.Settled();
      } else {
        ledger_.Hung(absl::StrCat("refused without RESOURCE_EXHAUSTED: ",
                                  refusal.ToString()));
      }
    }
  }
  EXPECT_FALSE(held.empty());
  EXPECT_THAT(refusal, StatusIs(absl::StatusCode::kResourceExhausted))
      << "after " << held.size() << " running children";
  // Free them all: the server must serve again.
  held.clear();
  EXPECT_TRUE(WaitNoneWith(seconds, absl::Now() + absl::Seconds(5)).empty());
  absl::Status recovered;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    recovered = NormalSpawn();
  } while (!recovered.ok() && absl::Now() < deadline);
  EXPECT_OK(recovered) << "no recovery after the descriptors were freed";
  ASSERT_EQ(::prlimit(daemon_->pid(), RLIMIT_NOFILE, &saved, nullptr), 0);
}

// Issue 7 item 4: under the common 1,024 soft limit (hard limit higher)
// only about 505 running children fit, though max_connections is 1,024.
// The daemon must raise its soft limit to the hard one.
TEST_F(ChaosTest, SoftFdLimitDoesNotCapRunningChildren) {
  rlimit ours;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &ours), 0);
  if (ours.rlim_max < 4096) {
    GTEST_SKIP() << "hard RLIMIT_NOFILE " << ours.rlim_max << " < 4096 here";
  }
  DaemonOptions options;
  options.nofile = rlimit{1024, ours.rlim_max};
  RestartDaemon(options);
  const std::string seconds = UniqueSleepSeconds(600);
  std::vector<RemoteCommand> held;
  absl::Status failed;
  for (int i = 0; i < 700 && failed.ok(); ++i) {
    ledger_.Sent();
    absl::StatusOr<RemoteCommand> command =
        RemoteCommand::Start(socket_, Sleeper(seconds));
    if (command.ok()) {
      held.push_back(*std::move(command));
    } else {
      failed = command.status();
    }
    ledger_.Settled();
  }
  EXPECT_OK(failed) << "only " << held.size()
                    << " running children fit under a 1,024 soft limit";
  GlobalFigures().connections =
      std::max<long>(GlobalFigures().connections, static_cast<long>(held.size()));
  held.clear();
  EXPECT_TRUE(WaitNoneWith(seconds, absl::Now() + absl::Seconds(10)).empty());
}

// Matrix row 10: out of pids (a pids cgroup of the test's own, holding only
// the daemon): fork's EAGAIN is RESOURCE_EXHAUSTED, the server survives and
// recovers.
TEST_F(ChaosTest, PidExhaustionIsResourceExhaustedThenRecovers) {
  absl::StatusOr<std::unique_ptr<PidsCgroup>> cgroup =
      PidsCgroup::Create(absl::StrCat("forkserver-chaos-", ::getpid()));
  if (!cgroup.ok()) {
    GTEST_SKIP() << "no pids cgroup of our own: " << cgroup.status();
  }
  ASSERT_OK((*cgroup)->SetMax(1 + 6));  // The daemon and six children.
  ASSERT_OK((*cgroup)->Add(daemon_->pid()));
  GlobalFigures().faults++;
  const std::string seconds = UniqueSleepSeconds(600);
  std::vector<RemoteCommand> held;
  absl::Status refusal;
  for (int i = 0; i < 20 && refusal.ok(); ++i) {
    ledger_.Sent();
    absl::StatusOr<RemoteCommand> command =
        RemoteCommand::Start(socket_, Sleeper(seconds));
    if (command.ok()) {
      held.push_back(*std::move(command));
      ledger_.Settled();
    } else {
      refusal = command.status();
      if (absl::IsResourceExhausted(refusal)) {
        ledger_.Settled();
      } else {
        ledger_.Hung(refusal.ToString());
      }
    }
  }
  EXPECT_EQ(held.size(), 6u);
  EXPECT_THAT(refusal, StatusIs(absl::StatusCode::kResourceExhausted));
  held.clear();
  EXPECT_TRUE(WaitNoneWith(seconds, absl::Now() + absl::Seconds(5)).empty());
  absl::Status recovered;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    recovered = NormalSpawn();
  } while (!recovered.ok() && absl::Now() < deadline);
  EXPECT_OK(recovered);
  cgroup->reset();  // Daemon back to the parent group; ours removed.
}

// ---------------------------------------------------------------------------
// Crowds.

// Idle connections held open, then normal clients: each is served, or
// refused with RESOURCE_EXHAUSTED that says so; never "closed by peer" or
// "went away" (issue 7 item 3: a busy server must not look dead).
void HoldIdleThenServe(ChaosTest* test, const std::string& socket, int idle_count,
                       Ledger* ledger, int* served, int* refused) {
  std::vector<UniqueFd> idle;
  for (int i = 0; i < idle_count; ++i) idle.push_back(testing::RawConnect(socket));
  GlobalFigures().connections =
      std::max<long>(GlobalFigures().connections, idle_count);
  for (int i = 0; i < 20; ++i) {
    ledger->Sent();
    CommandSpec spec;
    spec.argv = {"/bin/true"};
    spec.fds = {};
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket, spec);
    absl::Status status = command.status();
    if (command.ok()) {
      absl::StatusOr<int> exit = command->Wait(absl::Seconds(10));
      status = exit.status();
      if (exit.ok() && *exit != 0) status = absl::InternalError("exit != 0");
    }
    if (status.ok()) {
      ++*served;
      ledger->Settled();
    } else if (absl::IsResourceExhausted(status) &&
               absl::StrContains(status.message(), "connections")) {
      ++*refused;
      ledger->Settled();
    } else {
      ADD_FAILURE() << "client " << i << " with " << idle_count
                    << " idle connections: " << status;
      ledger->Hung(status.ToString());
    }
  }
}

TEST_F(ChaosTest, ThousandIdleConnectionsThenANormalClient) {
  int served = 0, refused = 0;
  HoldIdleThenServe(this, socket_, 1000, &ledger_, &served, &refused);
  EXPECT_EQ(served + refused, 20);
}

// Past max_connections (1,024): the refusals must say why (item 3).
TEST_F(ChaosTest, IdleConnectionsPastTheCapAreRefusedWithAReason) {
  int served = 0, refused = 0;
  HoldIdleThenServe(this, socket_, 1100, &ledger_, &served, &refused);
  EXPECT_EQ(served + refused, 20);
  EXPECT_GT(refused, 0) << "1,100 idle connections and no refusal?";
}

// Clients that send spawn requests and never read a reply: the server
// keeps serving everyone else.
TEST_F(ChaosTest, ClientsThatNeverReadDoNotStopTheServer) {
  std::vector<UniqueFd> deaf;
  wire::ClientMessage spawn;
  wire::SpawnRequest& request = *spawn.mutable_spawn();
  request.set_kind(wire::SPAWN_KIND_EXEC);
  request.set_kill_on_disconnect(true);
  request.mutable_exec()->set_path("/bin/true");
  request.mutable_exec()->add_argv("true");
  const std::string hello = testing::HelloBytes();
  const std::string bytes = spawn.SerializeAsString();
  for (int i = 0; i < 300; ++i) {
    UniqueFd socket = testing::RawConnect(socket_);
    ASSERT_OK(SendPacket(socket.get(), hello));
    ASSERT_OK(SendPacket(socket.get(), bytes));
    deaf.push_back(std::move(socket));
  }
  GlobalFigures().connections = std::max<long>(GlobalFigures().connections, 300);
  GlobalFigures().bad_inputs += 300;
  // Each within the client's own deadline (the first waits behind the
  // deaf clients' 300 spawns: slow under ASan, so no tighter bound).
  absl::Duration slowest;
  for (int i = 0; i < 20; ++i) {
    const absl::Time start = absl::Now();
    (void)ExpectServes(absl::StrCat("normal client ", i, " behind 300 deaf ones"));
    slowest = std::max(slowest, absl::Now() - start);
  }
  std::printf("20 normal spawns behind 300 deaf clients: slowest %s\n",
              absl::FormatDuration(slowest).c_str());
  deaf.clear();
}

// ---------------------------------------------------------------------------
// Hostile peers and inputs.

// Matrix row 14: a peer of another uid is refused, and told why (item 3).
TEST_F(ChaosTest, PeerOfAnotherUidIsRefusedWithAReason) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
  // Open the file modes wide, so that only the uid check stands in the way.
  ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);
  ASSERT_EQ(::chmod((dir_ + "/run").c_str(), 0711), 0);
  ASSERT_EQ(::chmod(socket_.c_str(), 0666), 0);
  const std::string hello = testing::HelloBytes();
  wire::ClientMessage spawn;
  spawn.mutable_spawn()->set_kind(wire::SPAWN_KIND_EXEC);
  spawn.mutable_spawn()->mutable_exec()->set_path("/bin/true");
  spawn.mutable_spawn()->mutable_exec()->add_argv("true");
  const std::string request = spawn.SerializeAsString();
  int told = 0;
  constexpr int kTries = 20;
  for (int attempt = 0; attempt < kTries; ++attempt) {
    auto [read_end, write_end] = testing::MakePipe();
    const pid_t helper = ::fork();
    if (helper == 0) {
      // Raw system calls only, then _exit.
      if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(10);
      const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      std::strncpy(address.sun_path, socket_.c_str(), sizeof(address.sun_path) - 1);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        ::_exit(11);
      }
      // As the library does: hello and request without waiting.
      (void)::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
      (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
      char reply[4096];
      const ssize_t n = ::recv(fd, reply, sizeof(reply), 0);  // First packet.
      if (n > 0) (void)!::write(write_end.get(), reply, static_cast<size_t>(n));
      ::_exit(n > 0 ? 0 : 12);
    }
    write_end.reset();
    const std::string said = ReadAvailable(read_end.get(), absl::Now() + absl::Seconds(10));
    int status = 0;
    ASSERT_EQ(::waitpid(helper, &status, 0), helper);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 10) << "could not become nobody";
    ASSERT_NE(WEXITSTATUS(status), 11) << "nobody could not reach the socket";
    GlobalFigures().bad_inputs++;
    wire::ServerMessage reply;
    if (WEXITSTATUS(status) == 0 && reply.ParseFromString(said) &&
        reply.has_error()) {
      EXPECT_EQ(reply.error().code(),
                static_cast<int>(absl::StatusCode::kPermissionDenied));
      EXPECT_THAT(reply.error().message(), HasSubstr("uid 65534"));
      EXPECT_FALSE(reply.has_hello());
      ++told;
    } else {
      EXPECT_FALSE(reply.has_hello()) << "a foreign uid got a hello back";
    }
  }
  EXPECT_EQ(told, kTries) << "refused peers not told why (closed by peer)";
  ::chmod(socket_.c_str(), 0600);
  ::chmod((dir_ + "/run").c_str(), 0700);
  ::chmod(dir_.c_str(), 0700);
}

// One bad input on a fresh connection.
struct BadInput {
  const char* name;
  bool after_hello;
  std::string bytes;
  int fds = 0;
};

std::vector<BadInput> BadInputs() {
  std::vector<BadInput> inputs;
  auto message = [](auto fill) {
    wire::ClientMessage m;
    fill(m);
    return m.SerializeAsString();
  };
  auto exec = [&](auto fill) {
    return message([&](wire::ClientMessage& m) {
      wire::SpawnRequest& s = *m.mutable_spawn();
      s.set_kind(wire::SPAWN_KIND_EXEC);
      s.set_kill_on_disconnect(true);
      s.mutable_exec()->set_path("/bin/true");
      s.mutable_exec()->add_argv("true");
      fill(s);
    });
  };
  inputs.push_back({"garbage first", false, std::string("\xff\xff\xff\x0f garbage", 13)});
  inputs.push_back({"oversized first", false, std::string(70 * 1024, 'x')});
  inputs.push_back({"hello v0", false, testing::HelloBytes(wire::PROTOCOL_VERSION_UNSPECIFIED)});
  inputs.push_back({"hello v99", false,
                    testing::HelloBytes(static_cast<wire::ProtocolVersion>(99))});
  inputs.push_back({"hello with fds", false, testing::HelloBytes(), 2});
  inputs.push_back({"hello with 100 fds (truncated)", false, testing::HelloBytes(), 100});
  inputs.push_back({"spawn before hello", false, exec([](wire::SpawnRequest&) {})});
  inputs.push_back({"status before hello", false,
                    message([](wire::ClientMessage& m) { m.mutable_status(); })});
  inputs.push_back({"second hello", true, testing::HelloBytes()});
  inputs.push_back({"kind unspecified", true,
                    exec([](wire::SpawnRequest& s) { s.set_kind(wire::SPAWN_KIND_UNSPECIFIED); })});
  inputs.push_back({"relative path", true,
                    exec([](wire::SpawnRequest& s) { s.mutable_exec()->set_path("true"); })});
  inputs.push_back({"empty argv", true,
                    exec([](wire::SpawnRequest& s) { s.mutable_exec()->clear_argv(); })});
  inputs.push_back({"NUL in argv", true, exec([](wire::SpawnRequest& s) {
                      s.mutable_exec()->add_argv(std::string("a\0b", 3));
                    })});
  inputs.push_back({"env without =", true,
                    exec([](wire::SpawnRequest& s) { s.mutable_exec()->add_env("NOEQUALS"); })});
  inputs.push_back({"child_fds without fds", true, exec([](wire::SpawnRequest& s) {
                      s.add_child_fds(0);
                      s.add_child_fds(1);
                    })});
  inputs.push_back({"fds without child_fds", true, exec([](wire::SpawnRequest&) {}), 3});
  inputs.push_back({"100 fds (truncated)", true, exec([](wire::SpawnRequest& s) {
                      for (int i = 0; i < 100; ++i) s.add_child_fds(i);
                    }), 100});
  inputs.push_back({"negative child fd", true, exec([](wire::SpawnRequest& s) {
                      s.add_child_fds(-1);
                    }), 1});
  inputs.push_back({"huge child fd", true, exec([](wire::SpawnRequest& s) {
                      s.add_child_fds(1 << 20);
                    }), 1});
  inputs.push_back({"status with fds", true,
                    message([](wire::ClientMessage& m) { m.mutable_status(); }), 1});
  inputs.push_back({"entry and exec", true,
                    exec([](wire::SpawnRequest& s) { s.set_entry("Nope"); })});
  inputs.push_back({"unknown entry", true, message([](wire::ClientMessage& m) {
                      m.mutable_spawn()->set_kind(wire::SPAWN_KIND_ENTRY);
                      m.mutable_spawn()->set_entry("NoSuchEntry");
                    })});
  const std::string whole = exec([](wire::SpawnRequest& s) {
    s.mutable_exec()->add_env("A=" + std::string(200, 'a'));
  });
  inputs.push_back({"truncated message", true, whole.substr(0, whole.size() / 2)});
  return inputs;
}

// Matrix row 13, at volume: every bad input closes its connection with a
// reason, the server stays up, every descriptor that came in is closed.
TEST_F(ChaosTest, MalformedOversizedTruncatedAndOutOfOrderAtVolume) {
  const std::vector<BadInput> inputs = BadInputs();
  constexpr int kTotal = 2000;
  std::map<std::string, int> unexplained;
  for (int i = 0; i < kTotal; ++i) {
    const BadInput& input = inputs[i % inputs.size()];
    UniqueFd socket = input.after_hello ? testing::ConnectAndHello(socket_)
                                        : testing::RawConnect(socket_);
    testing::RawSend(socket.get(), input.bytes, input.fds);
    const std::string error = testing::ErrorBeforeClose(socket.get());
    if (error.empty()) ++unexplained[input.name];
    GlobalFigures().bad_inputs++;
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (const auto& [name, count] : unexplained) {
    ADD_FAILURE() << "'" << name << "': connection closed without a reason "
                  << count << " times";
  }
  // A child running while its connection misbehaves: killed, reaped.
  for (int i = 0; i < 50; ++i) {
    UniqueFd socket = testing::ConnectAndHello(socket_);
    wire::ClientMessage spawn;
    wire::SpawnRequest& request = *spawn.mutable_spawn();
    request.set_kind(wire::SPAWN_KIND_EXEC);
    request.set_kill_on_disconnect(true);
    request.mutable_exec()->set_path("/bin/sleep");
    request.mutable_exec()->add_argv("sleep");
    request.mutable_exec()->add_argv("600");
    wire::ServerMessage reply = testing::Exchange(socket.get(), spawn);
    ASSERT_TRUE(reply.has_spawned()) << reply.DebugString();
    testing::RawSend(socket.get(), testing::HelloBytes(), 0);
    EXPECT_THAT(testing::ErrorBeforeClose(socket.get()),
                HasSubstr("unexpected message"));
    GlobalFigures().bad_inputs++;
  }
}

// Found by an outside attack: a client sent such a socket along with a
// request the server refused, and closed its own copy; the server's close
// of the last reference then waited out the whole linger time in its one
// thread, serving nobody. The daemon is stopped while the packet is sent
// and our copy closed, so that its copy is the last whatever the timing.
TEST_F(ChaosTest, ALingeringSocketItWasSentCannotStallTheServer) {
  auto [sender, peer] = testing::LingeringTcpSocket(/*linger_seconds=*/120);
  UniqueFd connection = testing::RawConnect(socket_);
  ASSERT_NO_FATAL_FAILURE(WhileDaemonStopped([&] {
    const int passed = sender.get();
    ASSERT_OK(SendPacket(connection.get(), testing::HelloBytes(), {&passed, 1}));
    sender.reset();  // In flight, the packet holds the only other reference.
  }));
  GlobalFigures().bad_inputs++;
  EXPECT_THAT(testing::ErrorBeforeClose(connection.get()), Not(::testing::IsEmpty()));
  // Served within NormalSpawn's 10 s, not after the 120 s of linger.
  (void)ExpectServes("the server stalled on closing a lingering socket");
}

// Found by an outside attack, the same socket one level down: queued in
// flight inside a Unix socket that is itself sent to the daemon.
// ReceiveUntrustedPacket cannot reach it to clear its linger, and closing
// the Unix socket releases it: that close was the server's, and waited out
// the linger in its one thread. Now every client descriptor goes to the
// closer process (forkserver/client_fd_closer.h).
TEST_F(ChaosTest, ALingeringSocketQueuedInASentSocketCannotStallTheServer) {
  // Ten times: the closer must never close its copy before the server has
  // closed its own (were it to, the server's close would be the last, and
  // block), and that was a race (found under ASan, 1 run in 3).
  for (int round = 0; round < 10; ++round) {
    auto [carrier, peer] = testing::UnixSocketQueuingALingeringOne(/*linger_seconds=*/120);
    UniqueFd connection = testing::RawConnect(socket_);
    ASSERT_NO_FATAL_FAILURE(WhileDaemonStopped([&] {
      const int passed = carrier.get();
      ASSERT_OK(SendPacket(connection.get(), testing::HelloBytes(), {&passed, 1}));
      carrier.reset();  // The daemon's copy, in flight, is the last.
    }));
    GlobalFigures().bad_inputs++;
    EXPECT_THAT(testing::ErrorBeforeClose(connection.get()), Not(::testing::IsEmpty()));
    if (!ExpectServes(absl::StrCat("round ", round, ": the server stalled on closing a socket "
                                   "that queued a lingering one"))
             .ok()) {
      break;
    }
  }
}

// Found by an outside attack: a packet with more descriptors than the cap
// (65, the last a lingering TCP socket). The receive buffer had room for
// 64, so the kernel closed the 65th itself, inside the server's recvmsg:
// the last reference, in the server's thread, and it waited out the
// linger. The buffer now takes all a sender can attach (253), and the
// refused packet's descriptors go to the closer like any others.
TEST_F(ChaosTest, DescriptorsPastTheCapCannotStallTheServer) {
  auto [sender, peer] = testing::LingeringTcpSocket(/*linger_seconds=*/120);
  UniqueFd connection = testing::RawConnect(socket_);
  ASSERT_NO_FATAL_FAILURE(WhileDaemonStopped([&] {
    ASSERT_GT(testing::SendWithMemfds(connection.get(), testing::HelloBytes(), kMaxPacketFds,
                                      /*flags=*/0, /*last_fd=*/sender.get()),
              0)
        << std::strerror(errno);
    sender.reset();  // In flight, the packet holds the only other reference.
  }));
  GlobalFigures().bad_inputs++;
  EXPECT_THAT(testing::ErrorBeforeClose(connection.get()), HasSubstr("at most 64"));
  (void)ExpectServes("the server stalled on a descriptor past the cap");
}

// Found by an outside attack: packets still queued when the server closes
// a connection (it reads 16 away first) are purged by that close, and the
// descriptors they carry closed with them, never received, so never made
// safe. A refused sandboxed spawn is closed at once; 40 packets follow it,
// ten of them carrying a lingering TCP socket. The connection's own close
// now goes to the closer too.
TEST_F(ChaosTest, PacketsQueuedOnAClosedConnectionCannotStallTheServer) {
  auto [sender, peer] = testing::LingeringTcpSocket(/*linger_seconds=*/120);
  UniqueFd connection = testing::RawConnect(socket_);
  wire::ClientMessage spawn;
  spawn.mutable_spawn()->set_kind(wire::SPAWN_KIND_EXEC);
  spawn.mutable_spawn()->mutable_exec()->set_path("/bin/true");
  spawn.mutable_spawn()->mutable_exec()->add_argv("true");
  spawn.mutable_spawn()->set_sandbox_text("this is { not a policy");
  ASSERT_NO_FATAL_FAILURE(WhileDaemonStopped([&] {
    testing::RawSend(connection.get(), testing::HelloBytes(), 0);
    testing::RawSend(connection.get(), spawn.SerializeAsString(), 0);
    for (int i = 0; i < 40; ++i) {
      ASSERT_GT(testing::SendWithMemfds(connection.get(), "x", 0, /*flags=*/0,
                                        /*last_fd=*/i >= 30 ? sender.get() : -1),
                0)
          << std::strerror(errno);
    }
    sender.reset();
  }));
  GlobalFigures().bad_inputs++;
  (void)ExpectServes("the server stalled on packets queued on a connection it closed");
}

// Matrix row 13: "0 bytes" gets INVALID_ARGUMENT and the connection
// closed. A zero-length packet (also what an empty ClientMessage, no oneof
// set, serialises to) must not pass for the client's EOF.
TEST_F(ChaosTest, ZeroLengthPacketsAreRefusedWithAReason) {
  for (bool after_hello : {false, true}) {
    for (int i = 0; i < 20; ++i) {
      UniqueFd socket = after_hello ? testing::ConnectAndHello(socket_)
                                    : testing::RawConnect(socket_);
      testing::RawSend(socket.get(), "", 0);
      GlobalFigures().bad_inputs++;
      EXPECT_THAT(testing::ErrorBeforeClose(socket.get()), Not(::testing::IsEmpty()))
          << "a zero-length packet " << (after_hello ? "after" : "before")
          << " the hello closed the connection without a reason";
    }
  }
}

// Issue 7 item 5: the daemon's stderr is a pipe nobody reads; 1,000
// malformed packets (each logged) must not stop it serving.
class UnreadStderrTest : public ChaosTest {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/fsc-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    socket_ = dir_ + "/run/socket";
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    pipe_read_.reset(fds[0]);
    UniqueFd pipe_write(fds[1]);
    DaemonOptions options;
    options.stderr_fd = pipe_write.get();
    StartDaemon(options);
  }
  void TearDown() override {
    // Read it now, so that TearDown's checks and the daemon's shutdown can
    // go on whatever the case saw.
    std::thread drain([fd = pipe_read_.get()] {
      ReadAvailable(fd, absl::Now() + absl::Seconds(60));
    });
    ChaosTest::TearDown();
    daemon_.reset();
    drain.join();
  }
  UniqueFd pipe_read_;
};

TEST_F(UnreadStderrTest, ThousandMalformedPacketsThenANormalSpawn) {
  const std::string garbage("\xff\xff\xff\x0f garbage", 13);
  int sent = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  for (int i = 0; i < 1000 && absl::Now() < give_up; ++i) {
    // Non-blocking: a daemon stuck on its stderr must not stop us too.
    UniqueFd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_.c_str(), sizeof(address.sun_path) - 1);
    if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address),
                  sizeof(address)) != 0) {
      absl::SleepFor(absl::Milliseconds(1));
      continue;
    }
    if (::send(socket.get(), garbage.data(), garbage.size(), MSG_NOSIGNAL) > 0) ++sent;
  }
  GlobalFigures().bad_inputs += sent;
  const absl::Time start = absl::Now();
  (void)ExpectServes(absl::StrCat("after ", sent, " malformed packets with stderr unread"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// ---------------------------------------------------------------------------
// Closed standard descriptors (issue 7 item 15).

TEST_F(ChaosTest, CtlRunWithStdinClosedEnds) {
  ledger_.Sent();
  absl::StatusOr<CtlResult> cat =
      RunCtl({"run", "--", "/bin/cat"}, /*closed_fd=*/0, absl::Seconds(10));
  ASSERT_OK(cat.status()) << "forkserverctl run -- /bin/cat <&- hung";
  // cat shares ctl's stderr: EOF there means both have ended.
  EXPECT_TRUE(cat->stderr_eof)
      << "forkserverctl ended (exit " << cat->exit_code << ", stderr '"
      << cat->stderr_text << "') but the cat it ran still runs";
  if (cat->stderr_eof) ledger_.Settled(); else ledger_.Hung("cat <&- still runs");
}

TEST_F(ChaosTest, CtlRunWithStdoutClosedIsNotInternal) {
  ledger_.Sent();
  absl::StatusOr<CtlResult> echo =
      RunCtl({"run", "--", "/bin/echo", "hi"}, /*closed_fd=*/1, absl::Seconds(10));
  ASSERT_OK(echo.status());
  ledger_.Settled();
  EXPECT_THAT(echo->stderr_text, Not(HasSubstr("INTERNAL")));
  EXPECT_THAT(echo->stderr_text, Not(HasSubstr("unexpected message")));
}

}  // namespace
}  // namespace chaos
}  // namespace forkserver
