#include "lib/pool_results.h"

#include "absl/strings/str_cat.h"
#include "lib/pool_core.h"

namespace forkserver {
namespace internal {

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
                         [&job]() { return job.ready; })) {
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
  return **job.items[0];
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

absl::Status MapResult::Visit(
    absl::Duration timeout,
    const std::function<absl::Status(size_t, const std::string&)>& visit)
    const {
  internal::JobState& job = *job_;
  if (absl::Status ready = WaitReady(job, timeout); !ready.ok()) return ready;
  absl::MutexLock lock(&job.mutex);
  if (!job.failure.ok()) return job.failure;
  for (const auto& item : job.items) {
    absl::Status visited = visit(job.items.size(), **item);
    if (!visited.ok()) return visited;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MapResult::Get(
    absl::Duration timeout) const {
  std::vector<std::string> values;
  absl::Status visited =
      Visit(timeout, [&values](size_t count, const std::string& bytes) {
        if (values.empty()) values.reserve(count);
        values.push_back(bytes);
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
    if (job.yielded == job.items.size()) return true;  // The end.
    return ordered ? job.items[job.next_ordered].has_value()
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
  const absl::StatusOr<std::string>& item = *job.items[index];
  if (!item.ok()) return item.status();
  return std::optional<std::string>(*item);
}

size_t ImapIterator::size() const {
  absl::MutexLock lock(&job_->mutex);
  return job_->items.size();
}

}  // namespace forkserver
