// File: tests/pool/pool_fixture.h
// -----------------------------------------------------------------------------
// The fixture the pool suites share: pools over the parameter's start
// method, with their log lines captured for assertions ("recycling logs
// nothing", "a killed worker is logged").

#ifndef FORKSERVER_TESTS_POOL_POOL_FIXTURE_H_
#define FORKSERVER_TESTS_POOL_POOL_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace testing {

// Why a "fork" pool cannot be tested under this build's ASan, or empty.
// GCC 12's ASan runtime takes no lock of its allocator across fork (LLVM's
// did only from 2023): a worker forked while another thread of the test
// (its main thread, say, between two Get calls) was refilling a cache
// inherits that allocator lock held and hangs in its first new[]. Seen
// here once in 76 runs of fork_churn_test with the pool's own threads
// already kept out of every lock (PoolCore::StartWorkerProcess). These
// tests run in the plain build, and under TSan, whose runtime does handle
// glibc's fork().
inline const char* ForkPoolUntestableHere() {
#ifdef __SANITIZE_ADDRESS__
  return "GCC 12's ASan runtime cannot fork a multi-threaded process "
         "safely (no allocator lock across fork): the \"fork\" pool runs in "
         "the plain and TSan builds";
#else
  return "";
#endif
}

class PoolFixture : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (GetParam() == StartMethod::kFork && *ForkPoolUntestableHere() != 0) {
      GTEST_SKIP() << ForkPoolUntestableHere();
    }
  }

  // `processes` workers, the parameter's start method, logs captured.
  PoolOptions Options(int processes = 2) {
    PoolOptions options;
    options.processes = processes;
    options.start_method = GetParam();
    options.log = [this](absl::string_view line) {
      absl::MutexLock lock(&log_mutex_);
      log_.push_back(std::string(line));
    };
    return options;
  }

  // The pool, or nullptr after a test failure saying why.
  std::unique_ptr<Pool> MakePool(PoolOptions options) {
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(std::move(options));
    EXPECT_OK(pool.status());
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  std::vector<std::string> Log() {
    absl::MutexLock lock(&log_mutex_);
    return log_;
  }

 private:
  absl::Mutex log_mutex_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mutex_);
};

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_POOL_POOL_FIXTURE_H_
