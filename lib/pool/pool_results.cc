#include "lib/pool/pool_results.h"

#include <sched.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/wait_readable.h"
#include "lib/pool/pool_core.h"

namespace forkserver {
namespace internal {

namespace {

// How long a waiter polls before it sleeps on the condition. A quick task's
// result lands within a few tens of µs of its dispatch; a waiter that sees
// it spinning saves its own wake-up. It yields between looks, so the pool's
// helper thread, which delivers the result, is never kept off the CPU.
constexpr absl::Duration kResultSpin = absl::Microseconds(50);

bool SpinUntil(JobState& job, absl::Time deadline,
               const std::function<bool()>& done) {
  if (!MayUseSeveralCpus()) return false;
  // The bound is on the monotonic clock: a wall clock stepped back must not
  // stretch the spin. `deadline` (the caller's, on absl::Now()) still ends it
  // early.
  const absl::Time until = MonotonicNow() + kResultSpin;
  do {
    {
      absl::MutexLock lock(&job.mutex);
      if (done()) return true;
    }
    ::sched_yield();
  } while (MonotonicNow() < until && absl::Now() < deadline);
  return false;
}

}  // namespace

bool WaitFor(JobState& job, absl::Time deadline,
             const std::function<bool()>& done) {
  if (std::shared_ptr<PoolCore> core = job.driver.lock();
      core != nullptr && !core->threads()) {
    // Event-loop mode: no helper thread will make progress for us.
    while (true) {
      {
        absl::MutexLock lock(&job.mutex);
        if (done()) return true;
      }
      const absl::Time now = absl::Now();
      if (now >= deadline) return false;
      core->ProcessEvents(std::min(deadline - now, absl::Milliseconds(10)));
    }
  }
  if (SpinUntil(job, deadline, done)) return true;
  absl::MutexLock lock(&job.mutex);
  return job.mutex.AwaitWithDeadline(
      absl::Condition(
          +[](const std::function<bool()>* condition) { return (*condition)(); },
          &done),
      deadline);
}

}  // namespace internal

namespace {

absl::Time DeadlineAfter(absl::Duration timeout) {
  return timeout == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                             : absl::Now() + timeout;
}

absl::Status NotReady(JobId id, absl::Duration timeout) {
  return absl::DeadlineExceededError(absl::StrCat(
      "job ", id, " is not ready after ", absl::FormatDuration(timeout)));
}

// OK once the job is ready within `timeout`, else DEADLINE_EXCEEDED.
absl::Status WaitReady(internal::JobState& job, absl::Duration timeout) {
  if (!internal::WaitFor(job, DeadlineAfter(timeout),
                         [&job]() {
                           job.mutex.AssertHeld();  // WaitFor holds it.
                           return job.ready;
                         })) {
    return NotReady(job.id, timeout);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> AsyncResult::Get(absl::Duration timeout) const {
  internal::JobState& job = *job_;
  if (absl::Status ready = WaitReady(job, timeout); !ready.ok()) return ready;
  absl::MutexLock lock(&job.mutex);
  if (!job.failure.ok()) return job.failure;
  return std::string(job.items.value(0));
}

bool AsyncResult::Wait(absl::Duration timeout) const {
  return WaitReady(*job_, timeout).ok();
}

bool AsyncResult::Successful() const {
  absl::MutexLock lock(&job_->mutex);
  return job_->ready && job_->failure.ok();
}

bool AsyncResult::Accepted() const {
  absl::MutexLock lock(&job_->mutex);
  return job_->chunks > 0 && job_->chunks_accepted >= job_->chunks;
}

std::vector<pid_t> AsyncResult::WorkerPids() const {
  absl::MutexLock lock(&job_->mutex);
  return job_->worker_pids;
}

absl::Status AsyncResult::Cancel() const {
  std::shared_ptr<PoolCore> core = job_->driver.lock();
  if (core == nullptr) {
    return absl::FailedPreconditionError("the job's pool is gone");
  }
  return core->Cancel(*job_);
}

absl::Status MapResult::VisitRuns(
    absl::Duration timeout,
    const std::function<absl::Status(size_t, absl::string_view, size_t,
                                     size_t)>& visit) const {
  internal::JobState& job = *job_;
  if (absl::Status ready = WaitReady(job, timeout); !ready.ok()) return ready;
  absl::MutexLock lock(&job.mutex);
  if (!job.failure.ok()) return job.failure;
  const size_t total = job.items.size();
  return job.items.VisitRuns(
      [&](absl::string_view block, size_t item_size, size_t count) {
        return visit(total, block, item_size, count);
      });
}

absl::StatusOr<std::vector<std::string>> MapResult::Get(
    absl::Duration timeout) const {
  std::vector<std::string> values;
  absl::Status visited = VisitRuns(
      timeout, [&values](size_t total, absl::string_view block,
                         size_t item_size, size_t count) {
        if (values.capacity() < total) values.reserve(total);
        for (size_t k = 0; k < count; ++k) {
          values.emplace_back(block.substr(k * item_size, item_size));
        }
        return absl::OkStatus();
      });
  if (!visited.ok()) return visited;
  return values;
}

absl::StatusOr<std::optional<std::string>> ImapIterator::Next(
    absl::Duration timeout) {
  internal::JobState& job = *job_;
  const bool ordered = job.kind == internal::JobKind::kImap;
  auto available = [&job, ordered]() {
    job.mutex.AssertHeld();  // WaitFor calls it under the job's lock.
    if (job.yielded == job.items.size()) return true;  // The end.
    return ordered ? job.items.done(job.next_ordered)
                   : !job.completed_order.empty();
  };
  if (!internal::WaitFor(job, DeadlineAfter(timeout), available)) {
    return NotReady(job.id, timeout);
  }
  absl::MutexLock lock(&job.mutex);
  if (job.yielded == job.items.size()) return std::optional<std::string>();
  size_t index;
  if (ordered) {
    index = job.next_ordered++;
  } else {
    index = job.completed_order.front();
    job.completed_order.pop_front();
  }
  ++job.yielded;
  if (!job.items.ok(index)) return job.items.error(index);
  return std::optional<std::string>(job.items.value(index));
}

size_t ImapIterator::size() const {
  absl::MutexLock lock(&job_->mutex);
  return job_->items.size();
}

}  // namespace forkserver
