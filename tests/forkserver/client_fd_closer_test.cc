// The closer process that takes the fork server's copies of client
// descriptors (forkserver/client_fd_closer.h): it closes them, Release
// never blocks, and one stuck in a close is replaced with nothing lost.

#include "forkserver/client_fd_closer.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"
#include "tests/support/lingering_socket.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace server_internal {
namespace {

// True once every writer of the pipe whose read end is `read_end` is
// closed (POLLHUP), within 30 s.
bool WritersClosed(int read_end) {
  pollfd p{read_end, POLLIN, 0};
  return ::poll(&p, 1, 30'000) == 1 && (p.revents & POLLHUP) != 0;
}

TEST(ClientFdCloserTest, ReleasedDescriptorsAreClosedByTheCloser) {
  ClientFdCloser closer;
  ASSERT_OK(closer.Start());
  ASSERT_GT(closer.pid(), 0);
  auto [read_end, write_end] = testing::MakePipe();
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(write_end));
  // The closer holds the only other copy once Release returns; that the
  // read end sees the hang-up shows it closed it.
  closer.Release(fds);
  EXPECT_TRUE(fds.empty());
  EXPECT_TRUE(WritersClosed(read_end.get()));
  EXPECT_EQ(closer.restarts(), 0);
}

// Without a closer (Start failed, or never called) Release closes in place.
TEST(ClientFdCloserTest, WithoutACloserReleaseClosesInPlace) {
  ClientFdCloser closer;
  auto [read_end, write_end] = testing::MakePipe();
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(write_end));
  closer.Release(fds);
  EXPECT_TRUE(fds.empty());
  EXPECT_TRUE(WritersClosed(read_end.get()));
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
  // Pipes' write ends, queued behind it; their read ends kept to check.
  std::vector<UniqueFd> read_ends;
  for (int i = 0; i < 100'000 && closer.restarts() == 0; ++i) {
    auto [read_end, write_end] = testing::MakePipe();
    fds.push_back(std::move(write_end));
    closer.Release(fds);
    if (read_ends.size() < 64) read_ends.push_back(std::move(read_end));
  }
  ASSERT_EQ(closer.restarts(), 1) << "the stuck closer's queue never filled";
  EXPECT_NE(closer.pid(), stuck);
  int status = 0;
  ASSERT_EQ(::waitpid(stuck, &status, 0), stuck);  // Dies at once: no linger.
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  for (const UniqueFd& read_end : read_ends) {
    EXPECT_TRUE(WritersClosed(read_end.get())) << "a queued descriptor was left open";
  }
  // The new closer closes.
  auto [read_end, write_end] = testing::MakePipe();
  fds.push_back(std::move(write_end));
  closer.Release(fds);
  EXPECT_TRUE(WritersClosed(read_end.get()));
}

}  // namespace
}  // namespace server_internal
}  // namespace forkserver
