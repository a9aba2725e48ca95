// File: tests/pool_fixture.h
// -----------------------------------------------------------------------------
// The fixture the pool suites share: pools over the parameter's start
// method, with their log lines captured for assertions ("recycling logs
// nothing", "a killed worker is logged").

#ifndef FORKSERVER_TESTS_POOL_FIXTURE_H_
#define FORKSERVER_TESTS_POOL_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/test_util.h"

namespace forkserver {
namespace testing {

class PoolFixture : public ::testing::TestWithParam<StartMethod> {
 protected:
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

#endif  // FORKSERVER_TESTS_POOL_FIXTURE_H_
