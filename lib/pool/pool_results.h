// File: lib/pool/pool_results.h
// -----------------------------------------------------------------------------
// Handles to pool jobs: AsyncResult (apply), MapResult (map, starmap),
// ImapIterator (imap, imap_unordered). Copyable, thread-safe, and valid
// after the Pool is gone (a job the pool could not finish has failed).
//
//   absl::StatusOr<forkserver::AsyncResult> r = pool->ApplyAsync("Square", 7);
//   absl::StatusOr<int> v = r->GetAs<int>(absl::Seconds(5));
//
// Get() on a job that is not ready in time is DEADLINE_EXCEEDED without a
// pool-error payload (a TimeLimitExceeded carries one).

#ifndef FORKSERVER_LIB_POOL_POOL_RESULTS_H_
#define FORKSERVER_LIB_POOL_POOL_RESULTS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/pool/pool_errors.h"
#include "lib/pool/pool_job.h"
#include "lib/pool/task.h"

namespace forkserver {

namespace internal {
template <typename T>
absl::StatusOr<T> DecodeAs(absl::string_view bytes) {
  T value{};
  absl::Status decoded = TaskCodec<T>::Decode(bytes, &value);
  if (!decoded.ok()) return decoded;
  return value;
}
}  // namespace internal

class AsyncResult {
 public:
  explicit AsyncResult(std::shared_ptr<internal::JobState> job)
      : job_(std::move(job)) {}

  // The result bytes, or the job's error; DEADLINE_EXCEEDED if not ready
  // within `timeout`.
  absl::StatusOr<std::string> Get(
      absl::Duration timeout = absl::InfiniteDuration()) const;
  template <typename T>
  absl::StatusOr<T> GetAs(absl::Duration timeout = absl::InfiniteDuration()) const {
    absl::StatusOr<std::string> bytes = Get(timeout);
    if (!bytes.ok()) return bytes.status();
    return internal::DecodeAs<T>(*bytes);
  }

  // True when ready within `timeout`.
  bool Wait(absl::Duration timeout = absl::InfiniteDuration()) const;
  bool Ready() const { return job_->Ready(); }
  // False until ready (never a crash), then whether it succeeded.
  bool Successful() const;
  // A worker acknowledged it (it started).
  bool Accepted() const;
  // Pids of the workers that acknowledged it; empty before.
  std::vector<pid_t> WorkerPids() const;
  JobId id() const { return job_->id; }

  // Cancels a job no worker has started: it fails with Cancelled. With
  // synack, a job sent to a worker but not yet running can be cancelled
  // too. FAILED_PRECONDITION once it runs or is done.
  absl::Status Cancel() const;

 protected:
  std::shared_ptr<internal::JobState> job_;
};

class MapResult : public AsyncResult {
 public:
  using AsyncResult::AsyncResult;

  // Every item's bytes, in order; or the first error.
  absl::StatusOr<std::vector<std::string>> Get(
      absl::Duration timeout = absl::InfiniteDuration()) const;
  template <typename T>
  absl::StatusOr<std::vector<T>> GetAs(
      absl::Duration timeout = absl::InfiniteDuration()) const {
    std::vector<T> values;
    absl::Status visited = VisitRuns(
        timeout, [&values](size_t total, absl::string_view block,
                           size_t item_size, size_t count) -> absl::Status {
          if (values.capacity() < total) values.reserve(total);
          if constexpr (internal::kFlatType<T>) {
            // A run of values of T's size: one memcpy.
            if (item_size == sizeof(T)) return internal::UnpackFlat(block, &values);
          }
          for (size_t k = 0; k < count; ++k) {
            absl::StatusOr<T> value =
                internal::DecodeAs<T>(block.substr(k * item_size, item_size));
            if (!value.ok()) return value.status();
            values.push_back(*std::move(value));
          }
          return absl::OkStatus();
        });
    if (!visited.ok()) return visited;
    return values;
  }

 private:
  // Once ready, calls visit(item count, block, item size, run count) for
  // runs of items in order, each `run count` values of `item size` bytes
  // back to back in `block` (as they arrived: a whole chunk of same-size
  // values is one run), without copying them out first. The job's error,
  // or the first error `visit` returns, ends it.
  absl::Status VisitRuns(
      absl::Duration timeout,
      const std::function<absl::Status(size_t, absl::string_view, size_t,
                                       size_t)>& visit) const;
};

class ImapIterator {
 public:
  explicit ImapIterator(std::shared_ptr<internal::JobState> job)
      : job_(std::move(job)) {}

  // The next item (in order for Imap, in completion order for
  // ImapUnordered): its bytes, its own error (the item failed; iteration
  // may go on), nullopt after the last one, or DEADLINE_EXCEEDED if none
  // is ready within `timeout`.
  absl::StatusOr<std::optional<std::string>> Next(
      absl::Duration timeout = absl::InfiniteDuration());
  template <typename T>
  absl::StatusOr<std::optional<T>> NextAs(
      absl::Duration timeout = absl::InfiniteDuration()) {
    absl::StatusOr<std::optional<std::string>> next = Next(timeout);
    if (!next.ok()) return next.status();
    if (!next->has_value()) return std::optional<T>();
    absl::StatusOr<T> value = internal::DecodeAs<T>(**next);
    if (!value.ok()) return value.status();
    return std::optional<T>(*std::move(value));
  }
  JobId id() const { return job_->id; }
  size_t size() const;

 private:
  std::shared_ptr<internal::JobState> job_;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_RESULTS_H_
