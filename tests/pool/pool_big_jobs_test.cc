// Jobs whose arguments or results add up past the pool channel's frame cap
// (256 MiB): every job ends with its values or a clear error, and the pool
// still closes and joins (issue 7, item 1: such a chunk was dropped in
// silence and Join() hung for ever).

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/pool/pool_fixture.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using testing::PoolFixture;

constexpr int kItems = 300;
constexpr int kItemBytes = 1 << 20;  // 300 MiB in one chunk: past the cap.

class PoolBigJobsTest : public PoolFixture {};

TEST_P(PoolBigJobsTest, ChunkOfArgumentsPastTheFrameCapRuns) {
  std::unique_ptr<Pool> pool = MakePool(Options(/*processes=*/1));
  ASSERT_NE(pool, nullptr);
  std::vector<std::string> args(kItems, std::string(kItemBytes, 'a'));
  CallOptions call;
  call.chunksize = kItems;
  absl::StatusOr<MapResult> job = pool->MapAsync("Length", args, call);
  ASSERT_OK(job.status());
  args.clear();
  absl::StatusOr<std::vector<int>> lengths = job->GetAs<int>(absl::Seconds(120));
  ASSERT_OK(lengths.status());
  ASSERT_EQ(lengths->size(), static_cast<size_t>(kItems));
  for (int length : *lengths) EXPECT_EQ(length, kItemBytes);
  pool->Close();
  EXPECT_OK(pool->Join());
}

TEST_P(PoolBigJobsTest, ChunkOfResultsPastTheFrameCapArrives) {
  std::unique_ptr<Pool> pool = MakePool(Options(/*processes=*/1));
  ASSERT_NE(pool, nullptr);
  CallOptions call;
  call.chunksize = kItems;
  absl::StatusOr<MapResult> job = pool->MapAsync(
      "MakeBytes", std::vector<int>(kItems, kItemBytes), call);
  ASSERT_OK(job.status());
  absl::StatusOr<std::vector<std::string>> values =
      job->GetAs<std::string>(absl::Seconds(120));
  ASSERT_OK(values.status());
  ASSERT_EQ(values->size(), static_cast<size_t>(kItems));
  for (const std::string& value : *values) {
    ASSERT_EQ(value.size(), static_cast<size_t>(kItemBytes));
    EXPECT_EQ(value.front(), 'r');
  }
  pool->Close();
  EXPECT_OK(pool->Join());
}

TEST_P(PoolBigJobsTest, OneArgumentPastTheCapIsResourceExhausted) {
  std::unique_ptr<Pool> pool = MakePool(Options(/*processes=*/1));
  ASSERT_NE(pool, nullptr);
  const std::string huge(size_t{256} << 20, 'h');
  absl::StatusOr<AsyncResult> job = pool->ApplyAsync("Length", huge);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kResourceExhausted)
      << job.status();
  EXPECT_NE(job.status().message().find("cap"), absl::string_view::npos);
  // The pool is unharmed.
  EXPECT_EQ(pool->Apply<int>("Length", std::string("abc")).value_or(-1), 3);
  pool->Close();
  EXPECT_OK(pool->Join());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PoolBigJobsTest,
                         testing::EveryStartMethod(), testing::MethodTestName);

}  // namespace
}  // namespace forkserver
