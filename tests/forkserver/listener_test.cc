// The listener's side of issue 7, items 13 and 14: the socket's directory
// is checked without following symlinks and must be 0700; one lock per
// socket decides who may serve (and unlink) it; directories of dead
// servers are reclaimed, live ones never.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "forkserver/listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
    ASSERT_OK(dir.status());
    root_ = *dir;
  }
  void TearDown() override {
    ASSERT_EQ(std::system(absl::StrCat("rm -rf '", root_, "'").c_str()), 0);
  }
  std::string root_;
};

TEST_F(ListenerTest, SymlinkedSocketDirectoryIsRefused) {
  const std::string real = root_ + "/real";
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(real.c_str(), (root_ + "/link").c_str()), 0);
  EXPECT_THAT(ListenAt(root_ + "/link/socket").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("symlink")));
  // ... also as an ancestor.
  ASSERT_EQ(::mkdir((real + "/inner").c_str(), 0700), 0);
  EXPECT_THAT(ListenAt(root_ + "/link/inner/socket").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("symlink")));
  struct stat st;
  EXPECT_NE(::lstat((real + "/socket").c_str(), &st), 0) << "bound anyway";
}

TEST_F(ListenerTest, OnlyMode0700DirectoriesAreAccepted) {
  const std::string dir = root_ + "/d";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  for (mode_t mode : {0755, 0750, 0711}) {
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    char expected[16];
    std::snprintf(expected, sizeof(expected), "mode %o", mode);
    EXPECT_THAT(ListenAt(dir + "/socket").status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr(expected)));
  }
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  EXPECT_OK(ListenAt(dir + "/socket").status());
}

// Many servers start at once on one path: exactly one gets it, the others
// a clear ALREADY_EXISTS, and the winner's socket is never unlinked.
TEST_F(ListenerTest, ConcurrentStartsOnOnePathLeaveExactlyOneLiveServer) {
  const std::string path = root_ + "/socket";
  for (int round = 0; round < 20; ++round) {
    constexpr int kServers = 4;
    std::vector<absl::StatusOr<ListeningSocket>> results(kServers);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kServers; ++i) {
      threads.emplace_back([&, i] {
        ++ready;
        while (ready.load() < kServers) {
        }
        results[i] = ListenAt(path);
      });
    }
    for (std::thread& t : threads) t.join();
    int winners = 0;
    for (const auto& result : results) {
      if (result.ok()) {
        ++winners;
        continue;
      }
      EXPECT_THAT(result.status(),
                  StatusIs(absl::StatusCode::kAlreadyExists,
                           HasSubstr("holds")));
    }
    ASSERT_EQ(winners, 1) << "round " << round;
    // The winner's socket is still in place and answers.
    UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::connect(probe.get(), reinterpret_cast<sockaddr*>(&address),
                        sizeof(address)),
              0)
        << "round " << round << ": the live socket was unlinked";
  }
}

TEST_F(ListenerTest, StaleDirectoriesAreReclaimedLiveOnesAreNot) {
  // A dead server's directory: socket file, lock file with its pid, no
  // holder.
  absl::StatusOr<std::string> stale = MakePrivateDirectory(root_);
  ASSERT_OK(stale.status());
  {
    absl::StatusOr<ListeningSocket> dead = ListenAt(*stale + "/socket");
    ASSERT_OK(dead.status());
  }  // Closed without cleaning up, as a SIGKILLed server leaves it.
  struct stat st;
  ASSERT_EQ(::stat((*stale + "/socket.lock").c_str(), &st), 0);
  // A live one.
  absl::StatusOr<std::string> live = MakePrivateDirectory(root_);
  ASSERT_OK(live.status());
  absl::StatusOr<ListeningSocket> server = ListenAt(*live + "/socket");
  ASSERT_OK(server.status());
  // One being set up (no lock file yet), and one that is not ours to touch
  // (wrong mode).
  absl::StatusOr<std::string> fresh = MakePrivateDirectory(root_);
  ASSERT_OK(fresh.status());
  absl::StatusOr<std::string> open_mode = MakePrivateDirectory(root_);
  ASSERT_OK(open_mode.status());
  {
    absl::StatusOr<ListeningSocket> dead = ListenAt(*open_mode + "/socket");
    ASSERT_OK(dead.status());
  }
  ASSERT_EQ(::chmod(open_mode->c_str(), 0755), 0);

  EXPECT_EQ(ReclaimStaleServerDirectories(root_), 1);
  EXPECT_NE(::stat(stale->c_str(), &st), 0) << "stale directory kept";
  EXPECT_EQ(::stat((*live + "/socket").c_str(), &st), 0)
      << "a live server's socket was removed";
  EXPECT_EQ(::stat(fresh->c_str(), &st), 0);
  EXPECT_EQ(::stat(open_mode->c_str(), &st), 0);
}

}  // namespace
}  // namespace forkserver
