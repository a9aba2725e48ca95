// File: lib/pool/pool.h
// -----------------------------------------------------------------------------
// forkserver::Pool: billiard's process pool in C++, over every start method.
//
//   absl::StatusOr<int> Square(const int& x, forkserver::TaskContext&) {
//     return x * x;
//   }
//   FORKSERVER_REGISTER_TASK(Square);
//
//   forkserver::PoolOptions options;
//   options.processes = 4;
//   options.timeout = absl::Seconds(30);            // hard limit per job
//   ASSIGN_OR_RETURN(std::unique_ptr<forkserver::Pool> pool,
//                    forkserver::Pool::Create(options));
//   ASSIGN_OR_RETURN(int nine, pool->Apply<int>("Square", 3));
//   ASSIGN_OR_RETURN(std::vector<int> squares,
//                    pool->Map<int>("Square", std::vector<int>{1, 2, 3}));
//   pool->Close();
//   RETURN_IF_ERROR(pool->Join());
//
// How it works: each worker has its own channel (a socket pair), so a
// worker killed mid-message hurts nobody else (billiard's shared queue
// lock, Celery #1218, cannot happen). A worker acknowledges a job before
// running it; time limits count from then. Jobs wait in the parent and are
// sent to the least loaded workers, each given at most about a millisecond
// of (measured) work beyond the job it runs: tiny tasks stream without a
// round trip each, long ones do not queue behind each other.
//
// Failures (lib/pool_errors.h) are absl::Status with payloads: a worker
// that dies mid-job fails it with WorkerLost after lost_worker_timeout (its
// results sent before dying are delivered first); a hard time limit fails
// it with TimeLimitExceeded and replaces the worker; terminate_job gives
// Terminated; too many failing restarts give RestartFreqExceeded and close
// the pool; a task's own error or exception comes back as a TaskError with
// its type, message and context. Nothing is lost silently: every job ends
// with a value or an error, and calls on a pool that is not running return
// an error.
//
// Threads: with `threads = true` (default) one helper thread runs the
// pool's events and callbacks. With `threads = false` there is none: put
// Readers() in your own epoll loop and call their handlers when readable
// (waiting on a result also drives the pool).

#ifndef FORKSERVER_LIB_POOL_POOL_H_
#define FORKSERVER_LIB_POOL_POOL_H_

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/pool/pool_errors.h"
#include "lib/pool/pool_results.h"
#include "lib/process/start_method.h"
#include "lib/pool/task.h"
#include "proto/sandbox.pb.h"

namespace forkserver {

struct WorkerInfo {
  // Stable slot, 0..processes-1; a replacement takes the lowest free one.
  int index = 0;
  pid_t pid = 0;
  // Set in on_process_down: the exit code (-N for signal N), and what the
  // worker said when it left on its own ("completed 100 tasks", "exceeded
  // memory limit (…KiB / …KiB)", "initializer 'X' failed: …").
  std::optional<int> exitcode;
  std::string exit_reason;
};

// billiard's options, one by one. Invalid values make Pool::Create fail
// with INVALID_ARGUMENT (or NOT_FOUND for an unregistered name).
struct PoolOptions {
  // Worker count; 0: the number of CPUs.
  int processes = 0;
  // A FORKSERVER_INITIALIZER name, run in each worker before its first
  // task. A failing initializer makes the worker exit 1 (counted by the
  // restart limiter).
  std::string initializer;
  std::string initializer_arg;
  // Recycle a worker (exit 155, no warning) after this many tasks.
  std::optional<int> maxtasksperchild;
  // Default hard and soft time limits per job (CallOptions override).
  std::optional<absl::Duration> timeout;
  std::optional<absl::Duration> soft_timeout;
  // Between noticing that a job's worker died and failing the job with
  // WorkerLost. Zero is zero.
  absl::Duration lost_worker_timeout = absl::Seconds(10);
  // Restart storms: at most max_restarts unsuccessful worker exits within
  // max_restart_freq, or max_restarts workers in a row that die before
  // they finish starting, else RestartFreqExceeded. Default 100 *
  // processes (on by default, unlike billiard).
  std::optional<int> max_restarts;
  absl::Duration max_restart_freq = absl::Seconds(1);
  // Parent side, after a worker started / after it was reaped.
  std::function<void(const WorkerInfo&)> on_process_up;
  std::function<void(const WorkerInfo&)> on_process_down;
  // Worker side: a FORKSERVER_EXIT_HOOK name, run just before a worker
  // exits on its own.
  std::string on_process_exit;
  // On each acknowledgement (both nullopt when the job has no limits) and
  // when a job's result is set: for callers that arm their own timers.
  std::function<void(JobId, std::optional<absl::Duration> soft,
                     std::optional<absl::Duration> hard)>
      on_timeout_set;
  std::function<void(JobId)> on_timeout_cancel;
  // false: event-loop mode, no helper threads (see Readers()).
  bool threads = true;
  // Put locks: ApplyAsync blocks while `semaphore` jobs (default:
  // processes) are unfinished. CallOptions::wait_for_slot overrides.
  bool putlocks = false;
  std::optional<int> semaphore;
  // Kept for billiard compatibility: Restart() works either way.
  bool allow_restart = false;
  // Two-phase start: a worker waits for the pool's go-ahead after
  // acknowledging, so AsyncResult::Cancel() can still stop the job.
  bool synack = false;
  // Recycle a worker after a task that left its peak RSS above this (KiB).
  std::optional<int64_t> max_memory_per_child_kib;
  // Default: GetStartMethod().
  std::optional<StartMethod> start_method;
  // Each worker runs in this sandbox (ProcessOptions::sandbox has the
  // contract): start method `forkserver` only (Create() is
  // FAILED_PRECONDITION with `fork` or `spawn`). A worker its sandbox
  // kills (wall time, memory, ...) is lost like any other: its job fails
  // with WorkerLost naming the reason, e.g. "Worker exited prematurely:
  // signal 9 (SIGKILL) (killed by its sandbox: wall time limit) Job: 3.",
  // and WorkerInfo::exit_reason says it too. The wall-time limit counts
  // from the worker's start, not per job.
  std::optional<sandbox::Policy> sandbox;
  // Hard limit: SIGTERM to the worker's process group, then SIGKILL after
  // this grace.
  absl::Duration hard_kill_grace = absl::Milliseconds(100);
  // Where the pool's log lines go (a worker that exited with an error,
  // callback errors). Default: stderr.
  std::function<void(absl::string_view line)> log;
};

class Pool {
 public:
  // Validates the options and starts the workers.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(PoolOptions options);

  // A running pool is terminated; a closed one joined.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // ---- Submitting work. `arg` is a task argument (a Protobuf message,
  // std::string, a string literal, an arithmetic value), or a std::tuple of
  // them for a task that takes several. Errors: NOT_FOUND for an
  // unregistered task; FAILED_PRECONDITION on a pool that is not running
  // (RESTART... when the restart limiter closed it).

  template <typename Arg>
  absl::StatusOr<AsyncResult> ApplyAsync(absl::string_view task,
                                         const Arg& arg,
                                         CallOptions options = {}) {
    return ApplyAsyncBytes(task, EncodeArg(arg), std::move(options));
  }
  template <typename R, typename Arg>
  absl::StatusOr<R> Apply(absl::string_view task, const Arg& arg,
                          CallOptions options = {}) {
    absl::StatusOr<AsyncResult> result =
        ApplyAsync(task, arg, std::move(options));
    if (!result.ok()) return result.status();
    return result->GetAs<R>();
  }

  template <typename Arg>
  absl::StatusOr<MapResult> MapAsync(absl::string_view task,
                                     const std::vector<Arg>& args,
                                     CallOptions options = {}) {
    return MapAsyncArgs(task, ArgsOf(args), std::move(options));
  }
  template <typename R, typename Arg>
  absl::StatusOr<std::vector<R>> Map(absl::string_view task,
                                     const std::vector<Arg>& args,
                                     CallOptions options = {}) {
    absl::StatusOr<MapResult> result = MapAsync(task, args, std::move(options));
    if (!result.ok()) return result.status();
    return result->GetAs<R>();
  }

  // Map for tasks of several arguments: each item is their tuple.
  template <typename... Args>
  absl::StatusOr<MapResult> StarmapAsync(
      absl::string_view task, const std::vector<std::tuple<Args...>>& args,
      CallOptions options = {}) {
    return MapAsync(task, args, std::move(options));
  }
  template <typename R, typename... Args>
  absl::StatusOr<std::vector<R>> Starmap(
      absl::string_view task, const std::vector<std::tuple<Args...>>& args,
      CallOptions options = {}) {
    return Map<R>(task, args, std::move(options));
  }

  template <typename Arg>
  absl::StatusOr<ImapIterator> Imap(absl::string_view task,
                                    const std::vector<Arg>& args,
                                    CallOptions options = {}) {
    return ImapArgs(task, ArgsOf(args), /*ordered=*/true, std::move(options));
  }
  template <typename Arg>
  absl::StatusOr<ImapIterator> ImapUnordered(absl::string_view task,
                                             const std::vector<Arg>& args,
                                             CallOptions options = {}) {
    return ImapArgs(task, ArgsOf(args), /*ordered=*/false, std::move(options));
  }

  // The byte-level forms everything above goes through.
  absl::StatusOr<AsyncResult> ApplyAsyncBytes(absl::string_view task,
                                              std::string arg,
                                              CallOptions options);
  absl::StatusOr<MapResult> MapAsyncBytes(absl::string_view task,
                                          std::vector<std::string> args,
                                          CallOptions options);
  absl::StatusOr<ImapIterator> ImapBytes(absl::string_view task,
                                         std::vector<std::string> args,
                                         bool ordered, CallOptions options);

  // ---- Managing the pool.

  // Ends the job worker `pid` is running: the worker gets `signal`, and
  // the job fails with Terminated (no error log, no restart counted).
  // NOT_FOUND for a pid that is not one of our workers.
  absl::Status TerminateJob(pid_t pid, int signal = SIGTERM);
  // Adds n workers. Shrink retires n idle workers (the highest indices
  // first); with fewer than n idle, or fewer than one worker left, it is
  // FAILED_PRECONDITION ("Can't shrink pool. All processes busy!") and
  // retires none.
  absl::Status Grow(int n = 1);
  absl::Status Shrink(int n = 1);
  // Replaces every worker once it finishes what it was given (exit 0, not
  // counted as a failure). Works whatever the options.
  absl::Status Restart();
  // Waits (up to `timeout`) until every worker has started and run its
  // initializer: true; false as soon as one has died, or on timeout.
  bool DidStartOk(absl::Duration timeout = absl::Seconds(10));
  // No new jobs; those submitted still run; workers exit when done.
  void Close();
  // Stops now: queued jobs fail with Cancelled, running ones with
  // Terminated (results that arrive first are delivered); workers get
  // SIGTERM, then SIGKILL after hard_kill_grace. Waits for them.
  absl::Status Terminate();
  // Waits until every job is done and every worker has exited, then frees
  // the pool's threads and descriptors. FAILED_PRECONDITION while running
  // (Close() or Terminate() first).
  absl::Status Join();

  // ---- Event-loop mode (threads = false; usable either way).

  // The descriptors to watch for reading and what to call when one is
  // readable. Today a single epoll descriptor that stands for all of the
  // pool's channels, sentinels and timers, so the set never changes as
  // workers come and go.
  std::vector<std::pair<int, std::function<void()>>> Readers();
  // Reaps exited workers and starts replacements (done by the handlers as
  // well). RESTART_FREQ... when the limiter closed the pool.
  absl::Status MaintainPool();

  // ---- State.
  std::vector<WorkerInfo> Workers() const;
  int processes() const;
  // Exceptions thrown by callbacks so far (each was also logged).
  int64_t CallbackErrors() const;

 private:
  explicit Pool(std::shared_ptr<PoolCore> core) : core_(std::move(core)) {}

  template <typename Arg>
  static std::string EncodeArg(const Arg& arg) {
    if constexpr (std::is_convertible_v<const Arg&, absl::string_view>) {
      return std::string(absl::string_view(arg));
    } else {
      return TaskCodec<Arg>::Encode(arg);
    }
  }
  template <typename Arg>
  static std::vector<std::string> EncodeArgs(const std::vector<Arg>& args) {
    std::vector<std::string> encoded;
    encoded.reserve(args.size());
    for (const Arg& arg : args) encoded.push_back(EncodeArg(arg));
    return encoded;
  }
  // Arithmetic arguments travel as one block (lib/pool/flat_codec.h): the
  // same bytes per item as TaskCodec<Arg>, without a string each.
  template <typename Arg>
  static internal::JobArgs ArgsOf(const std::vector<Arg>& args) {
    if constexpr (internal::kFlatType<Arg>) {
      return internal::JobArgs::Packed(internal::ItemBlock{
          internal::PackFlat(args), sizeof(Arg), args.size()});
    } else {
      return internal::JobArgs::Strings(EncodeArgs(args));
    }
  }
  absl::StatusOr<MapResult> MapAsyncArgs(absl::string_view task,
                                         internal::JobArgs args,
                                         CallOptions options);
  absl::StatusOr<ImapIterator> ImapArgs(absl::string_view task,
                                        internal::JobArgs args, bool ordered,
                                        CallOptions options);

  std::shared_ptr<PoolCore> core_;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_H_
