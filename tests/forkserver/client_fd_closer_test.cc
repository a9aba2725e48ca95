// The closer process that takes the fork server's copies of client
// descriptors (forkserver/client_fd_closer.h): it closes them, Release
// never blocks, and one stuck in a close is replaced with nothing lost.

#include "forkserver/client_fd_closer.h"

#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/lingering_socket.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace server_internal {
namespace {

// True once the other end of `ours` (a pipe's read end, or one end of a
// socketpair) is closed everywhere (POLLHUP), within 30 s.
bool PeerClosed(int ours) {
  pollfd p{ours, POLLIN, 0};
  return ::poll(&p, 1, 30'000) == 1 && (p.revents & POLLHUP) != 0;
}

// {ours, theirs}: an AF_UNIX stream socketpair. Sockets are what the
// closer takes (their close can block); pipes are closed in place.
std::pair<UniqueFd, UniqueFd> SocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST(ClientFdCloserTest, ReleasedDescriptorsAreClosedByTheCloser) {
  ClientFdCloser closer;
  ASSERT_OK(closer.Start());
  ASSERT_GT(closer.pid(), 0);
  auto [ours, theirs] = SocketPair();
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(theirs));
  // The closer holds the only other copy once Release returns; that our
  // end sees the hang-up shows it closed it.
  closer.Release(fds);
  EXPECT_TRUE(fds.empty());
  EXPECT_TRUE(PeerClosed(ours.get()));
  EXPECT_EQ(closer.restarts(), 0);
}

// Kinds whose close cannot block are closed in place, so a closer stuck
// on somebody's socket never delays the EOF a pipe's reader waits for.
// The closer is stopped here: a pipe still closes, a socket waits for it.
TEST(ClientFdCloserTest, PipesAreClosedInPlaceSocketsByTheCloser) {
  ClientFdCloser closer;
  ASSERT_OK(closer.Start());
  ASSERT_EQ(::kill(closer.pid(), SIGSTOP), 0);
  auto [read_end, write_end] = testing::MakePipe();
  auto [ours, theirs] = SocketPair();
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(write_end));
  fds.push_back(std::move(theirs));
  closer.Release(fds);
  EXPECT_TRUE(PeerClosed(read_end.get()));
  pollfd p{ours.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the socket was closed before the closer ran";
  ASSERT_EQ(::kill(closer.pid(), SIGCONT), 0);
  EXPECT_TRUE(PeerClosed(ours.get()));
}

// Never started (a template's closer): the first descriptor that needs it
// starts it, which is no replacement; a pipe alone never does.
TEST(ClientFdCloserTest, ANeverStartedCloserStartsOnFirstUse) {
  ClientFdCloser closer;
  auto [read_end, write_end] = testing::MakePipe();
  std::vector<UniqueFd> pipe;
  pipe.push_back(std::move(write_end));
  closer.Release(pipe);
  EXPECT_TRUE(PeerClosed(read_end.get()));
  EXPECT_EQ(closer.pid(), 0) << "a pipe started the closer";
  auto [ours, theirs] = SocketPair();
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(theirs));
  closer.Release(fds);
  EXPECT_TRUE(fds.empty());
  EXPECT_TRUE(PeerClosed(ours.get()));
  EXPECT_GT(closer.pid(), 0);
  EXPECT_EQ(closer.restarts(), 0);
}

// A closer stuck for two minutes in the close of a Unix socket that queues
// a lingering TCP socket: Release goes on returning at once, the stuck
// closer is killed and replaced once its queue is full, and what was
// queued to it is closed too (an exiting process's closes do not linger).
TEST(ClientFdCloserTest, AStuckCloserIsReplacedAndNothingIsLeftOpen) {
  ClientFdCloser closer;
  ASSERT_OK(closer.Start());
  const pid_t stuck = closer.pid();
  auto [carrier, peer] = testing::UnixSocketQueuingALingeringOne(/*linger_seconds=*/120);
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(carrier));
  closer.Release(fds);
  // Sockets, queued behind it; their peers kept to check.
  std::vector<UniqueFd> peers;
  for (int i = 0; i < 100'000 && closer.restarts() == 0; ++i) {
    auto [ours, theirs] = SocketPair();
    fds.push_back(std::move(theirs));
    closer.Release(fds);
    if (peers.size() < 64) peers.push_back(std::move(ours));
  }
  ASSERT_EQ(closer.restarts(), 1) << "the stuck closer's queue never filled";
  EXPECT_NE(closer.pid(), stuck);
  int status = 0;
  ASSERT_EQ(::waitpid(stuck, &status, 0), stuck);  // Dies at once: no linger.
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  for (const UniqueFd& peer : peers) {
    EXPECT_TRUE(PeerClosed(peer.get())) << "a queued descriptor was left open";
  }
  // The new closer closes.
  auto [ours, theirs] = SocketPair();
  fds.push_back(std::move(theirs));
  closer.Release(fds);
  EXPECT_TRUE(PeerClosed(ours.get()));
}

}  // namespace
}  // namespace server_internal
}  // namespace forkserver
