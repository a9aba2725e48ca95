// PoolCore's public operations: terminate a job, grow, shrink, restart,
// close, terminate, join, and the event-loop mode's readers.

#include "lib/pool/pool_core.h"

#include <signal.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"

namespace forkserver {

absl::Status PoolCore::TerminateJob(pid_t pid, int signal) {
  absl::MutexLock lock(&mu_);
  for (auto& [serial, worker] : workers_) {
    if (worker->process->pid() != pid) continue;
    worker->terminate_signal = signal;
    // Its death, whenever it comes, is ours: no error log, not counted.
    worker->controlled = true;
    for (int64_t id : worker->outstanding) {
      auto it = dispatches_.find(id);
      if (it != dispatches_.end() && it->second.accepted) {
        worker->terminated_dispatch = id;
        break;
      }
    }
    return worker->process->Signal(signal);
  }
  return absl::NotFoundError(
      absl::StrCat("no worker of this pool has pid ", pid));
}

absl::Status PoolCore::Grow(int n) {
  if (n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Grow(", n, "): n must be at least 1"));
  }
  std::vector<int> planned;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kRun) return NotRunning();
    processes_ += n;
    planned = PlanStarts();
  }
  StartPlanned(std::move(planned));  // Dispatches to them, arms the timer.
  RunDeliveries();
  return absl::OkStatus();
}

absl::Status PoolCore::Shrink(int n) {
  if (n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Shrink(", n, "): n must be at least 1"));
  }
  absl::MutexLock lock(&mu_);
  if (state_ != State::kRun) return NotRunning();
  if (processes_ - n < 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Can't shrink pool of ", processes_, " processes by ", n,
        ": at least one must remain"));
  }
  std::vector<Worker*> idle;
  for (auto& [serial, worker] : workers_) {
    if (!worker->retiring && !worker->exited && worker->outstanding.empty()) {
      idle.push_back(worker.get());
    }
  }
  // The highest slots go first, so the others stay 0..processes-1.
  std::sort(idle.begin(), idle.end(), [](const Worker* a, const Worker* b) {
    return a->index > b->index;
  });
  // Check first, act after: never retire some and then fail (billiard P11).
  if (idle.size() < static_cast<size_t>(n)) {
    return absl::FailedPreconditionError(
        "Can't shrink pool. All processes busy!");
  }
  for (int i = 0; i < n; ++i) {
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(*idle[i], message);
    FlushWorker(*idle[i]);
    idle[i]->retiring = true;
    idle[i]->controlled = true;
  }
  processes_ -= n;
  return absl::OkStatus();
}

absl::Status PoolCore::Restart() {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kRun) return NotRunning();
  for (auto& [serial, worker] : workers_) {
    if (worker->retiring) continue;
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(*worker, message);
    FlushWorker(*worker);
    worker->retiring = true;
  }
  return absl::OkStatus();
}

bool PoolCore::SlotFreeOrStopped() const {
  return slots_in_use_ < slots_ || state_ != State::kRun;
}

bool PoolCore::StartSettled() const {
  if (initial_died_) return true;
  for (const auto& [serial, worker] : workers_) {
    if (worker->initial && !worker->up) return false;
  }
  return true;
}

bool PoolCore::DidStartOk(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (options_.threads) {
        mu_.AwaitWithDeadline(absl::Condition(this, &PoolCore::StartSettled),
                              deadline);
      }
      if (StartSettled()) return !initial_died_;
      if (absl::Now() >= deadline) return false;
    }
    ProcessEvents(std::min(deadline - absl::Now(), absl::Milliseconds(10)));
  }
}

void PoolCore::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kRun) state_ = State::kClose;
    RetireIdleWhenClosing();
    WakeLocked();
  }
}

absl::Status PoolCore::Terminate() {
  {
    absl::MutexLock lock(&mu_);
    if (joined_) return absl::OkStatus();
    if (state_ != State::kTerminate) {
      state_ = State::kTerminate;
      for (int64_t id : queue_) {
        auto it = dispatches_.find(id);
        if (it == dispatches_.end()) continue;
        FailDispatch(it->second, CancelledJobError(it->second.job->id));
        dispatches_.erase(it);
      }
      queue_.clear();
      // Jobs whose worker is already gone: no point waiting for the timer.
      std::vector<int64_t> lost;
      for (auto& [id, dispatch] : dispatches_) {
        if (dispatch.lost) {
          FailDispatch(dispatch, WorkerLostError(dispatch.lost_exitcode,
                                                 dispatch.job->id,
                                                 dispatch.lost_reason));
          lost.push_back(id);
        }
      }
      for (int64_t id : lost) {
        timed_.erase(id);
        dispatches_.erase(id);
      }
      const absl::Time now = MonotonicNow();
      for (auto& [serial, worker] : workers_) {
        worker->controlled = true;
        KillGroup(*worker, SIGTERM);
        worker->kill_at = now + options_.hard_kill_grace;
      }
      ArmTimer();
    }
    WakeLocked();
  }
  RunDeliveries();
  return Join();
}

absl::Status PoolCore::Join() {
  if (OnHelperThread()) {
    return absl::FailedPreconditionError(
        "Join() from a pool callback would wait for itself");
  }
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kRun) {
      return absl::FailedPreconditionError(
          "pool is still running; call Close() or Terminate() first");
    }
    if (joined_) return absl::OkStatus();
  }
  if (options_.threads) {
    // Two threads may Join at once: one joins the threads, the other
    // waits for it (std::thread::join from two threads is undefined).
    absl::MutexLock join_lock(&join_mu_);
    if (loop_.joinable()) loop_.join();
    // The helper ended with nothing left to start: the starter is idle.
    StopStarter();
    if (starter_.joinable()) starter_.join();
  } else {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (Finished()) break;
      }
      ProcessEvents(absl::Milliseconds(50));
    }
  }
  RunDeliveries();
  absl::MutexLock lock(&mu_);
  joined_ = true;
  // Another thread may still be in epoll_wait (event-loop mode, or
  // MaintainPool): wake it and wait until it has let go of the descriptors.
  WakeLocked();
  mu_.Await(absl::Condition(
      +[](int* waiters) { return *waiters == 0; }, &event_waiters_));
  // Nothing may linger after join (billiard#282 leaked four pipes).
  epoll_.reset();
  wake_.reset();
  timer_.reset();
  return absl::OkStatus();
}

absl::Status PoolCore::MaintainPool() {
  ProcessEvents(absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  return failure_;
}

std::vector<std::pair<int, std::function<void()>>> PoolCore::Readers() {
  std::weak_ptr<PoolCore> weak = weak_from_this();
  absl::MutexLock lock(&mu_);
  return {{epoll_.get(), [weak] {
             if (auto core = weak.lock()) core->ProcessEvents(absl::ZeroDuration());
           }}};
}

std::vector<WorkerInfo> PoolCore::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerInfo> infos;
  for (const auto& [serial, worker] : workers_) {
    infos.push_back({worker->index, worker->process->pid(), std::nullopt, ""});
  }
  std::sort(infos.begin(), infos.end(),
            [](const WorkerInfo& a, const WorkerInfo& b) { return a.index < b.index; });
  return infos;
}

int PoolCore::processes() const {
  absl::MutexLock lock(&mu_);
  return processes_;
}

}  // namespace forkserver
