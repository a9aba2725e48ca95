// File: lib/pool/pool_core.h
// -----------------------------------------------------------------------------
// The machinery behind forkserver::Pool (lib/pool.h documents the
// behaviour): workers and their channels, the job queue and dispatch, time
// limits, lost workers, restarts, and the event processing that ties them
// together. Internal to the library.
//
// Time: every deadline here (time limits, lost workers, kill escalation,
// retries) is on MonotonicNow(), so a wall clock stepped back cannot hold
// one off; the timerfd is CLOCK_MONOTONIC too.
//
// Concurrency: one mutex (mu_) guards all pool state. Events are collected
// with epoll outside the lock and handled under it; user callbacks are
// queued under the lock and run after it is released, on the thread that
// processed the events (the helper thread, or the caller's event loop).

#ifndef FORKSERVER_LIB_POOL_POOL_CORE_H_
#define FORKSERVER_LIB_POOL_POOL_CORE_H_

#include <sys/epoll.h>
#include <sys/types.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/ipc/framed_channel.h"
#include "lib/pool/pool.h"
#include "lib/pool/pool_job.h"
#include "lib/process/process.h"
#include "lib/pool/restart_limiter.h"
#include "lib/base/unique_fd.h"
#include "proto/pool.pb.h"

namespace forkserver {

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  static absl::StatusOr<std::shared_ptr<PoolCore>> Create(PoolOptions options);
  ~PoolCore();

  // What destroying the Pool does: a running pool is terminated, a closed
  // one joined (from a pool callback: stopped, and the helper thread
  // finishes the rest).
  void Shutdown();

  absl::StatusOr<std::shared_ptr<internal::JobState>> Submit(
      internal::JobKind kind, absl::string_view task, internal::JobArgs args,
      CallOptions options);
  absl::Status Cancel(internal::JobState& job);

  absl::Status TerminateJob(pid_t pid, int signal);
  absl::Status Grow(int n);
  absl::Status Shrink(int n);
  absl::Status Restart();
  bool DidStartOk(absl::Duration timeout);
  void Close();
  absl::Status Terminate();
  absl::Status Join();
  absl::Status MaintainPool();
  std::vector<std::pair<int, std::function<void()>>> Readers();

  std::vector<WorkerInfo> Workers() const;
  int processes() const;
  int64_t CallbackErrors() const { return callback_errors_.load(); }
  bool threads() const { return options_.threads; }

  // Waits up to `timeout` for events, handles them, runs the callbacks
  // they produced.
  void ProcessEvents(absl::Duration timeout);

 private:
  enum class State { kRun, kClose, kTerminate };

  struct Worker {
    int64_t serial = 0;
    int index = 0;
    bool initial = false;
    std::unique_ptr<Process> process;
    UniqueFd channel;
    FrameReader reader;
    FrameWriter writer;
    bool want_write = false;
    bool up = false;
    bool retiring = false;     // Told to shut down: no more dispatches.
    bool exited = false;       // Its sentinel fired.
    bool controlled = false;   // We ended it: no error log, not counted.
    int terminate_signal = 0;  // TerminateJob: its running job is Terminated.
    int64_t terminated_dispatch = 0;
    std::deque<int64_t> outstanding;  // Sent, not done, in order.
    double average_item_usec = -1;    // Measured work per item.
    absl::Time kill_at = absl::InfiniteFuture();
    std::string exit_reason;
    // A sandboxed worker its sandbox killed: why ("killed by its sandbox:
    // wall time limit"), for WorkerLost and the log.
    std::string sandbox_kill;
  };

  struct Dispatch {
    int64_t id = 0;
    std::shared_ptr<internal::JobState> job;
    size_t first_item = 0;
    // The serialized ToWorker task, until accepted (a requeue resends it).
    std::string payload;
    size_t item_count = 0;
    int64_t worker = 0;             // Serial; 0 while queued.
    bool accepted = false;
    absl::Time accepted_at;
    std::optional<absl::Duration> soft, hard;
    bool soft_fired = false;
    bool hard_fired = false;
    // Its worker died while it ran: fails at lost_deadline.
    bool lost = false;
    absl::Time lost_deadline;
    int lost_exitcode = 0;
    std::string lost_reason;  // Worker::sandbox_kill of its worker.
  };

  explicit PoolCore(PoolOptions options);

  // Logging goes through options_.log (or stderr), never under mu_: a log
  // callback may call into the pool or throw. Log() queues the line as a
  // delivery (run after the lock is released); EmitLog() writes it now,
  // from code that does not hold the lock, and survives a throwing
  // callback.
  void Log(std::string line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLog(absl::string_view line) ABSL_LOCKS_EXCLUDED(mu_);
  bool OnHelperThread() const;
  void DropOutstanding(Worker& worker, int64_t dispatch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(std::function<void()> callback)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunDeliveries() ABSL_LOCKS_EXCLUDED(mu_);
  void RunDeliveriesInsideGate() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether this thread is running this pool's callbacks (and so holds
  // fork_gate_ shared).
  bool DeliveringOnThisThread() const;
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SlotFreeOrStopped() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every initial worker is up, or one of them died.
  bool StartSettled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status NotRunning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Starting workers, in three steps so Process::Start never runs under
  // mu_: PlanStarts() (under mu_) reserves the free slots in starting_,
  // StartPlanned() launches a worker per slot without the lock and adopts
  // each under it (AdoptWorker), or schedules a retry and steps the
  // restart limiter when one cannot start.
  absl::StatusOr<std::unique_ptr<Worker>> LaunchWorker(int index,
                                                       bool initial)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Process::Start, but a "fork" start holds fork_gate_ and mu_ across it.
  absl::Status StartWorkerProcess(Process& process) ABSL_LOCKS_EXCLUDED(mu_);
  void AdoptWorker(std::unique_ptr<Worker> worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<int> PlanStarts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // False when `worker`'s slot is past processes_ or held by another
  // worker that stays.
  bool SlotWanted(const Worker& worker) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartInitialWorkers() ABSL_LOCKS_EXCLUDED(mu_);
  // With threads: slots the starter thread (StarterLoop) is to fill, so
  // the helper thread never waits for a start.
  void StartLater(std::vector<int> slots) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StarterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  bool StarterHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopStarter() ABSL_LOCKS_EXCLUDED(mu_);
  void StartPlanned(std::vector<int> slots) ABSL_LOCKS_EXCLUDED(mu_);
  void ReadChannel(Worker& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleMessage(Worker& worker, wire::ToParent& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleAccepted(Worker& worker, const wire::TaskAccepted& accepted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleDone(Worker& worker, wire::TaskDone& done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<int64_t> HandleReadyEvents(const ::epoll_event* events,
                                         int ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleDeath(int64_t serial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SettleOutstanding(Worker& worker, int exitcode, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleTimers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckLimits(Dispatch& dispatch, Worker& worker, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmTimer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchQueued() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  size_t Window(const Worker& worker) const;
  void Send(Worker& worker, const wire::ToWorker& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FlushWorker(Worker& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetireIdleWhenClosing() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KillGroup(Worker& worker, int signal);
  void SendSoftLimit(Worker& worker, int64_t dispatch);
  void TripRestartLimiter(absl::Status failure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Sets items [first, first + outcomes) of a job; makes it ready when
  // complete (or, for a map, at the first failure).
  void SetItems(internal::JobState& job, size_t first,
                internal::ItemOutcomes outcomes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Dispatch> PrepareDispatches(
      const std::shared_ptr<internal::JobState>& job, internal::JobArgs args);
  absl::Status TakeSlot(internal::JobState& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailDispatch(Dispatch& dispatch, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Requeue(std::vector<int64_t> dispatches)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Worker* FindWorker(int64_t serial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PoolOptions options_;
  const int slots_;

  // A worker forked with the "fork" start method copies this process with
  // every lock its threads held at that instant. Held by the pool's own
  // threads while they run callbacks outside mu_ (shared), and by a fork
  // (exclusive, then mu_): see StartWorkerProcess.
  absl::Mutex fork_gate_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  UniqueFd epoll_ ABSL_GUARDED_BY(mu_);
  UniqueFd wake_ ABSL_GUARDED_BY(mu_);
  UniqueFd timer_ ABSL_GUARDED_BY(mu_);
  // Threads in ProcessEvents' epoll_wait, outside the lock.
  int event_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  State state_ ABSL_GUARDED_BY(mu_) = State::kRun;
  // Once the restart limiter trips: why every later call fails.
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  int processes_ ABSL_GUARDED_BY(mu_);
  // By serial (never reused). A retiring worker and its replacement can
  // hold the same index for a while.
  std::map<int64_t, std::unique_ptr<Worker>> workers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, Dispatch> dispatches_ ABSL_GUARDED_BY(mu_);
  // Dispatches with a time limit or a lost-worker deadline.
  absl::flat_hash_set<int64_t> timed_ ABSL_GUARDED_BY(mu_);
  std::deque<int64_t> queue_ ABSL_GUARDED_BY(mu_);
  RestartLimiter limiter_ ABSL_GUARDED_BY(mu_);
  int slots_in_use_ ABSL_GUARDED_BY(mu_) = 0;
  // Slots whose worker is being started (outside the lock); those of them
  // waiting for the starter thread; whether that thread is to stop.
  std::set<int> starting_ ABSL_GUARDED_BY(mu_);
  std::vector<int> start_queue_ ABSL_GUARDED_BY(mu_);
  bool stop_starter_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_serial_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> next_dispatch_{0};
  // The timer's current deadline, to re-arm it only when it changes.
  absl::Time armed_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time next_maintenance_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool initial_died_ ABSL_GUARDED_BY(mu_) = false;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::function<void()>> deliveries_ ABSL_GUARDED_BY(mu_);

  std::atomic<int64_t> callback_errors_{0};
  std::thread loop_;     // The helper thread (threads = true).
  std::atomic<std::thread::id> helper_id_{};  // Its id, set by itself.
  absl::Mutex join_mu_;  // Serialises Join() (the threads' join()).
  std::thread starter_;  // Starts replacement workers (threads = true).
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_CORE_H_
