// The Pool's building blocks on their own: the restart limiter (billiard's
// test_restart_state), frame encoding, task codecs, error kinds.

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/ipc/framed_channel.h"
#include "lib/pool/pool_errors.h"
#include "lib/pool/restart_limiter.h"
#include "lib/pool/task.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

TEST(RestartLimiterTest, RaisesOnTheOneTooMany) {
  RestartLimiter limiter(3, absl::Seconds(1));
  const absl::Time t = absl::Now();
  EXPECT_OK(limiter.Step(t));
  EXPECT_OK(limiter.Step(t + absl::Milliseconds(10)));
  EXPECT_OK(limiter.Step(t + absl::Milliseconds(20)));
  absl::Status exceeded = limiter.Step(t + absl::Milliseconds(30));
  EXPECT_THAT(exceeded, StatusIs(absl::StatusCode::kResourceExhausted,
                                 HasSubstr("RestartFreqExceeded: 4 in 1s")));
  EXPECT_EQ(GetPoolError(exceeded), PoolError::kRestartFreqExceeded);
}

TEST(RestartLimiterTest, TimePassedResetsTheCounter) {
  RestartLimiter limiter(2, absl::Seconds(1));
  const absl::Time t = absl::Now();
  EXPECT_OK(limiter.Step(t));
  EXPECT_OK(limiter.Step(t + absl::Milliseconds(500)));
  EXPECT_OK(limiter.Step(t + absl::Seconds(2)));  // A new window.
  EXPECT_EQ(limiter.count(), 1);
}

TEST(RestartLimiterTest, AcceptedJobResetsTheCounter) {
  RestartLimiter limiter(1, absl::Seconds(10));
  const absl::Time t = absl::Now();
  EXPECT_OK(limiter.Step(t));
  limiter.Reset();
  EXPECT_OK(limiter.Step(t + absl::Milliseconds(1)));
}

TEST(RestartLimiterTest, FailedStartsInARowTripWhateverTheRate) {
  RestartLimiter limiter(3, absl::Milliseconds(1));
  absl::Time t = absl::Now();
  for (int i = 0; i < 3; ++i) {
    t += absl::Seconds(10);  // Far slower than the rate limit.
    EXPECT_OK(limiter.Step(t, /*started=*/false));
  }
  EXPECT_THAT(limiter.Step(t + absl::Seconds(10), /*started=*/false),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("4 workers in a row died before starting")));
  // One worker that starts resets the streak.
  for (int i = 0; i < 3; ++i) {
    t += absl::Seconds(10);
    EXPECT_OK(limiter.Step(t, false));
  }
  limiter.WorkerStarted();
  EXPECT_OK(limiter.Step(t + absl::Seconds(10), false));
}

TEST(FramedChannelTest, FramesSurviveBatchingAndSplitting) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  FrameWriter writer;
  const std::vector<std::string> frames = {"", "one", std::string(200'000, 'x'),
                                           std::string("\0\1\2", 3)};
  for (const std::string& f : frames) ASSERT_OK(writer.Append(f));
  std::thread sender([&] { EXPECT_OK(writer.Flush(a.get())); });
  FrameReader reader;
  std::vector<std::string> received;
  while (received.size() < frames.size()) {
    absl::StatusOr<std::optional<absl::string_view>> next = reader.Next();
    ASSERT_OK(next.status());
    if (next->has_value()) {
      received.push_back(std::string(**next));
      continue;
    }
    absl::StatusOr<size_t> read = reader.Fill(b.get());
    ASSERT_OK(read.status());
    ASSERT_GT(*read, 0u);
  }
  sender.join();
  EXPECT_EQ(received, frames);
}

TEST(FramedChannelTest, OversizedFrameHeaderIsAnError) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  const char header[4] = {'\xff', '\xff', '\xff', '\x7f'};
  ASSERT_EQ(::write(a.get(), header, 4), 4);
  FrameReader reader;
  ASSERT_OK(reader.Fill(b.get()).status());
  EXPECT_THAT(reader.Next().status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("exceeds the cap")));
}

TEST(TaskCodecTest, RoundTrips) {
  std::string bytes = TaskCodec<std::tuple<int, std::string, double>>::Encode(
      {7, "seven", 7.5});
  std::tuple<int, std::string, double> back;
  ASSERT_OK((TaskCodec<std::tuple<int, std::string, double>>::Decode(bytes, &back)));
  EXPECT_EQ(back, std::make_tuple(7, std::string("seven"), 7.5));
  std::vector<int> values;
  ASSERT_OK(TaskCodec<std::vector<int>>::Decode(
      TaskCodec<std::vector<int>>::Encode({1, 2, 3}), &values));
  EXPECT_EQ(values, (std::vector<int>{1, 2, 3}));
  int x;
  EXPECT_THAT(TaskCodec<int>::Decode("abc", &x),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::tuple<int, int> pair;
  EXPECT_THAT((TaskCodec<std::tuple<int, int>>::Decode(
                  TaskCodec<std::tuple<int>>::Encode({1}), &pair)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected 2 arguments")));
}

TEST(PoolErrorsTest, MessagesUsersRecognise) {
  EXPECT_EQ(WorkerLostError(-9, 10).message(),
            "Worker exited prematurely: signal 9 (SIGKILL) Job: 10.");
  EXPECT_EQ(WorkerLostError(3, 4).message(),
            "Worker exited prematurely: exitcode 3 Job: 4.");
  EXPECT_EQ(HumanDuration(absl::Seconds(2)), "2 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(1)), "1 second");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(1500)), "1.5 seconds");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(250)), "250 milliseconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(90)), "1 minute 30 seconds");
  for (PoolError kind : {PoolError::kWorkerLost, PoolError::kTerminated,
                         PoolError::kTimeLimitExceeded}) {
    absl::Status status = kind == PoolError::kWorkerLost
                              ? WorkerLostError(1, 1)
                              : kind == PoolError::kTerminated
                                    ? TerminatedError(1, 15)
                                    : TimeLimitExceededError(absl::Seconds(1), 1);
    EXPECT_EQ(GetPoolError(status), kind);
  }
  EXPECT_EQ(GetPoolError(absl::InternalError("plain")), std::nullopt);
}

}  // namespace
}  // namespace forkserver
