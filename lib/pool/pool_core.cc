// PoolCore's lifecycle (create, the helper thread, shutdown), its callback
// delivery, and the event loop that ties the other parts together:
// pool_core_workers.cc (the worker set), pool_core_channel.cc (messages from
// workers), pool_core_jobs.cc (submitting, results), pool_core_dispatch.cc
// (sending queued work), pool_core_timers.cc (time limits),
// pool_core_control.cc (the public operations).

#include "lib/pool/pool_core.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "absl/strings/str_cat.h"
#include "lib/pool/pool_options_check.h"
#include "lib/pool/pool_worker.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"
#include "lib/pool/pool_event_tags.h"

namespace forkserver {

using internal::kChannel;
using internal::kSerialMask;
using internal::kTagShift;
using internal::kTimer;
using internal::kWake;
using internal::Watch;

namespace {

// The pool whose callbacks this thread is running, if any.
thread_local const PoolCore* delivering_core = nullptr;

}  // namespace

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      slots_(options_.semaphore.value_or(internal::ProcessCount(options_))),
      processes_(internal::ProcessCount(options_)),
      limiter_(options_.max_restarts.value_or(100 * internal::ProcessCount(options_)),
               options_.max_restart_freq) {}

absl::StatusOr<std::shared_ptr<PoolCore>> PoolCore::Create(
    PoolOptions options) {
  RETURN_IF_ERROR(internal::ValidatePoolOptions(options));
  (void)internal::PoolWorkerEntryName();  // Keeps the worker linked in.
  std::shared_ptr<PoolCore> core(new PoolCore(std::move(options)));
  {
    absl::MutexLock lock(&core->mu_);
    core->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    core->wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    core->timer_.reset(
        ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!core->epoll_ || !core->wake_ || !core->timer_) {
      return ErrnoError("creating the pool's epoll, eventfd or timerfd");
    }
    Watch(core->epoll_.get(), core->wake_.get(), kWake, 0);
    Watch(core->epoll_.get(), core->timer_.get(), kTimer, 0);
  }
  absl::Status start_failure = core->StartInitialWorkers();
  if (!start_failure.ok()) {
    // Reap the workers that did start, then say why the pool could not.
    while (true) {
      {
        absl::MutexLock lock(&core->mu_);
        if (core->workers_.empty()) break;
      }
      core->ProcessEvents(absl::Milliseconds(100));
    }
    // The workers' up and down callbacks and log lines still run: the
    // caller sees what happened, and nothing is dropped.
    core->RunDeliveries();
    absl::MutexLock lock(&core->mu_);
    core->joined_ = true;
    return start_failure;
  }
  if (core->options_.threads) {
    // The helper thread owns a reference: a Pool destroyed from one of its
    // own callbacks stops the pool, and the core goes when this returns.
    core->loop_ = std::thread([self = core] {
      self->helper_id_ = std::this_thread::get_id();
      while (true) {
        self->ProcessEvents(absl::InfiniteDuration());
        absl::MutexLock lock(&self->mu_);
        if (self->state_ != State::kRun && self->Finished()) {
          // Nothing is left to start either: the starter goes too, and
          // with it its reference.
          self->stop_starter_ = true;
          return;
        }
      }
    });
    // Replacement workers start on their own thread: a start can wait
    // seconds for the fork server, and the helper thread must keep
    // reading results meanwhile.
    core->starter_ = std::thread([self = core] { self->StarterLoop(); });
  }
  core->RunDeliveries();
  return core;
}

// Starts processes_ workers, outside the lock (the pool is not shared
// yet, but Process::Start may take long and must never hold mu_). If one
// cannot start, the pool is terminating and the others are being killed.
absl::Status PoolCore::StartInitialWorkers() {
  int count;
  {
    absl::MutexLock lock(&mu_);
    count = processes_;
    for (int index = 0; index < count; ++index) starting_.insert(index);
  }
  std::vector<std::unique_ptr<Worker>> started;
  absl::Status failure;
  for (int index = 0; index < count && failure.ok(); ++index) {
    absl::StatusOr<std::unique_ptr<Worker>> worker =
        LaunchWorker(index, /*initial=*/true);
    if (worker.ok()) {
      started.push_back(*std::move(worker));
    } else {
      failure = worker.status();
    }
  }
  absl::MutexLock lock(&mu_);
  starting_.clear();
  if (!failure.ok()) state_ = State::kTerminate;
  for (auto& worker : started) AdoptWorker(std::move(worker));  // Kills when
  return failure;                                               // stopping.
}

PoolCore::~PoolCore() {
  // Pool::~Pool already stopped us; here only the threads are left. One's
  // own last reference may be what destroys us, on that thread itself.
  StopStarter();
  for (std::thread* thread : {&loop_, &starter_}) {
    if (!thread->joinable()) continue;
    if (std::this_thread::get_id() == thread->get_id()) {
      thread->detach();
    } else {
      thread->join();
    }
  }
}

void PoolCore::StarterLoop() {
  while (true) {
    std::vector<int> slots;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &PoolCore::StarterHasWork));
      if (start_queue_.empty()) return;
      slots.swap(start_queue_);
    }
    StartPlanned(std::move(slots));
    // Its callbacks (on_process_up) run on the helper thread, like every
    // other callback: wake it.
    absl::MutexLock lock(&mu_);
    WakeLocked();
  }
}

bool PoolCore::StarterHasWork() const {
  return !start_queue_.empty() || stop_starter_;
}

void PoolCore::StopStarter() {
  absl::MutexLock lock(&mu_);
  stop_starter_ = true;
}

void PoolCore::Shutdown() {
  bool running, joined;
  {
    absl::MutexLock lock(&mu_);
    running = state_ == State::kRun;
    joined = joined_;
  }
  // From a callback, Join() cannot wait for the helper thread; the pool
  // still stops, and the thread finishes it.
  if (running) {
    (void)Terminate();
  } else if (!joined) {
    (void)Join();
  }
}

bool PoolCore::OnHelperThread() const {
  // Not loop_.get_id(): a Join() on another thread may be joining loop_.
  return std::this_thread::get_id() == helper_id_.load();
}

void PoolCore::Log(std::string line) {
  Deliver([this, line = std::move(line)] { EmitLog(line); });
}

void PoolCore::EmitLog(absl::string_view line) {
  if (options_.log) {
    try {
      options_.log(line);
      return;
    } catch (...) {
      // A log callback that throws must not lose the line or the thread:
      // count it and fall back to stderr.
      ++callback_errors_;
    }
  }
  std::fprintf(stderr, "forkserver pool: %.*s\n",
               static_cast<int>(line.size()), line.data());
}

void PoolCore::Deliver(std::function<void()> callback) {
  deliveries_.push_back(std::move(callback));
}

void PoolCore::RunDeliveries() {
  // A callback may destroy the Pool, and with it the last owner of this
  // core: on the caller's thread too, when its own call (Submit) delivers
  // a result that came back at once. Held here, the core outlives the
  // gate below and is destroyed, if need be, when this returns (on the
  // helper thread ~PoolCore detaches it). Null while being destroyed.
  const std::shared_ptr<PoolCore> keep_alive = weak_from_this().lock();
  // Callbacks allocate outside mu_: a fork waits for them (fork_gate_).
  // A callback that reaches RunDeliveries again is already inside.
  if (DeliveringOnThisThread()) {
    RunDeliveriesInsideGate();
    return;
  }
  absl::ReaderMutexLock gate(&fork_gate_);
  const PoolCore* outer = delivering_core;
  delivering_core = this;
  RunDeliveriesInsideGate();
  delivering_core = outer;
}

bool PoolCore::DeliveringOnThisThread() const {
  return delivering_core == this;
}

void PoolCore::RunDeliveriesInsideGate() {
  std::vector<std::function<void()>> batch;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(deliveries_);
  }
  for (auto& callback : batch) {
    // billiard's P6/P7: a callback's error is reported, never swallowed,
    // and never takes the pool (or the application) down.
    try {
      callback();
    } catch (const std::exception& e) {
      ++callback_errors_;
      EmitLog(absl::StrCat("pool callback raised an exception: ", e.what()));
    } catch (...) {
      ++callback_errors_;
      EmitLog("pool callback raised a non-std exception");
    }
  }
}

void PoolCore::WakeLocked() {
  if (!wake_) return;  // Joined: nobody is waiting.
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
}

bool PoolCore::Finished() const {
  return workers_.empty() && starting_.empty() && dispatches_.empty() &&
         queue_.empty();
}

absl::Status PoolCore::NotRunning() const {
  if (!failure_.ok()) return failure_;
  return absl::FailedPreconditionError(
      state_ == State::kClose ? "pool is closed" : "pool is terminated");
}

// The descriptors epoll reported: wake-ups and timer expiries drained,
// channels flushed and read; returns the workers whose sentinel fired.
std::vector<int64_t> PoolCore::HandleReadyEvents(const epoll_event* events,
                                                 int ready) {
  std::vector<int64_t> deaths;
  for (int i = 0; i < ready; ++i) {
    const uint64_t tag = events[i].data.u64 >> kTagShift;
    const int64_t serial = static_cast<int64_t>(events[i].data.u64 & kSerialMask);
    if (tag == kWake) {
      uint64_t count;
      (void)!::read(wake_.get(), &count, sizeof(count));
    } else if (tag == kTimer) {
      uint64_t expirations;
      (void)!::read(timer_.get(), &expirations, sizeof(expirations));
      armed_ = absl::InfiniteFuture();  // One-shot: it is disarmed now.
    } else if (Worker* worker = FindWorker(serial)) {
      if (tag == kChannel) {
        if (events[i].events & EPOLLOUT) FlushWorker(*worker);
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          ReadChannel(*worker);
        }
      } else if (!worker->exited) {
        worker->exited = true;
        deaths.push_back(serial);
      }
    }
  }
  return deaths;
}

void PoolCore::ProcessEvents(absl::Duration timeout) {
  epoll_event events[64];
  const int millis =
      timeout == absl::InfiniteDuration()
          ? -1
          : static_cast<int>(std::min<int64_t>(
                absl::ToInt64Milliseconds(timeout + absl::Microseconds(999)),
                1 << 30));
  int epoll;
  std::vector<int> planned;  // Slots to start a worker in, after the lock.
  {
    // Join() closes the descriptors once no thread is waiting on them.
    absl::MutexLock lock(&mu_);
    if (joined_) return;
    epoll = epoll_.get();
    ++event_waiters_;
  }
  const int ready = ::epoll_wait(epoll, events, 64, millis);
  {
    absl::MutexLock lock(&mu_);
    --event_waiters_;
    if (joined_) return;
    std::vector<int64_t> deaths = HandleReadyEvents(events, ready);
    for (int64_t serial : deaths) HandleDeath(serial);
    HandleTimers();
    planned = PlanStarts();
    if (options_.threads) {
      StartLater(std::move(planned));  // The starter thread's, then.
      planned.clear();
    }
    DispatchQueued();
    RetireIdleWhenClosing();
    ArmTimer();
    // Another thread (MaintainPool, a waiter in event-loop mode) may have
    // handled the last event: make sure the helper thread looks again and
    // sees it has nothing left to do.
    if (state_ != State::kRun && Finished() && options_.threads) WakeLocked();
  }
  if (!planned.empty()) StartPlanned(std::move(planned));
  RunDeliveries();
}

void PoolCore::StartLater(std::vector<int> slots) {
  start_queue_.insert(start_queue_.end(), slots.begin(), slots.end());
}

}  // namespace forkserver
