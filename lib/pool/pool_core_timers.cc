// PoolCore's time limits: soft (SIGUSR1) and hard (TERM, then KILL)
// limits, lost-worker deadlines, kill escalation, and the one timerfd
// that wakes the loop for the nearest of them.

#include "lib/pool/pool_core.h"

#include <signal.h>
#include <sys/timerfd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"

namespace forkserver {

// Fires a started dispatch's soft limit (SIGUSR1) and hard limit (the job
// fails; TERM now, KILL after the grace) when their time has come.
void PoolCore::CheckLimits(Dispatch& dispatch, Worker& worker, absl::Time now) {
  const CallOptions& call = dispatch.job->options;
  if (dispatch.soft.has_value() && !dispatch.soft_fired &&
      now >= dispatch.accepted_at + *dispatch.soft) {
    dispatch.soft_fired = true;
    if (call.timeout_callback) {
      Deliver([callback = call.timeout_callback, limit = *dispatch.soft] {
        callback(true, limit);
      });
    }
    SendSoftLimit(worker, dispatch.id);
  }
  if (dispatch.hard.has_value() && !dispatch.hard_fired &&
      now >= dispatch.accepted_at + *dispatch.hard) {
    dispatch.hard_fired = true;
    FailDispatch(dispatch,
                 TimeLimitExceededError(*dispatch.hard, dispatch.job->id));
    if (call.timeout_callback) {
      Deliver([callback = call.timeout_callback, limit = *dispatch.hard] {
        callback(false, limit);
      });
    }
    // TERM now, KILL after the grace, to the whole process group; the
    // worker is replaced when reaped.
    worker.controlled = true;
    worker.retiring = true;
    KillGroup(worker, SIGTERM);
    worker.kill_at = now + options_.hard_kill_grace;
    // Jobs sent to it but not started stay with it until it is gone
    // (then they are requeued): it may still start them before it dies,
    // and a job must not run twice.
  }
}

void PoolCore::HandleTimers() {
  const absl::Time now = MonotonicNow();
  std::vector<int64_t> expired;
  for (int64_t id : timed_) {
    auto it = dispatches_.find(id);
    if (it == dispatches_.end()) {
      expired.push_back(id);
      continue;
    }
    Dispatch& dispatch = it->second;
    if (dispatch.lost) {
      if (now >= dispatch.lost_deadline) {
        FailDispatch(dispatch,
                     WorkerLostError(dispatch.lost_exitcode, dispatch.job->id,
                                     dispatch.lost_reason));
        expired.push_back(id);
      }
      continue;
    }
    Worker* worker = FindWorker(dispatch.worker);
    if (worker == nullptr || !dispatch.accepted) continue;
    CheckLimits(dispatch, *worker, now);
  }
  for (int64_t id : expired) {
    timed_.erase(id);
    auto it = dispatches_.find(id);
    if (it != dispatches_.end() && it->second.lost) dispatches_.erase(it);
  }
  for (auto& [serial, worker] : workers_) {
    if (now >= worker->kill_at) {
      KillGroup(*worker, SIGKILL);
      worker->kill_at = absl::InfiniteFuture();
    }
  }
}

void PoolCore::ArmTimer() {
  absl::Time next = next_maintenance_;
  for (int64_t id : timed_) {
    auto it = dispatches_.find(id);
    if (it == dispatches_.end()) continue;
    const Dispatch& dispatch = it->second;
    if (dispatch.lost) {
      next = std::min(next, dispatch.lost_deadline);
      continue;
    }
    if (!dispatch.accepted) continue;
    if (dispatch.soft.has_value() && !dispatch.soft_fired) {
      next = std::min(next, dispatch.accepted_at + *dispatch.soft);
    }
    if (dispatch.hard.has_value() && !dispatch.hard_fired) {
      next = std::min(next, dispatch.accepted_at + *dispatch.hard);
    }
  }
  for (const auto& [serial, worker] : workers_) {
    next = std::min(next, worker->kill_at);
  }
  // A system call per event batch adds up: re-arm only on a new deadline.
  // (A passed deadline fires at once, and its handling moves it on.)
  if (next == armed_ && next > MonotonicNow()) return;
  armed_ = next;
  itimerspec spec{};
  if (next != absl::InfiniteFuture()) {
    // A zero it_value would disarm: fire in at least a nanosecond.
    const absl::Duration left =
        std::max(next - MonotonicNow(), absl::Nanoseconds(1));
    spec.it_value = absl::ToTimespec(left);
  }
  ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

}  // namespace forkserver
