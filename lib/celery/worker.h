// File: lib/celery/worker.h
// -----------------------------------------------------------------------------
// A Celery worker whose tasks run on a forkserver Pool.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Worker> worker, Worker::Create(options));
//   // from a signal-handling thread: worker->RequestShutdown(/*cold=*/false)
//   RETURN_IF_ERROR(worker->Run());   // returns once shut down
//
// Life of a message: taken from the broker (recorded in kombu's unacked
// bookkeeping) while fewer than the prefetch limit are held; rejected with
// a FAILURE result if unusable, revoked, expired or not registered; held
// until its eta; run on the pool (CeleryExecute) with its time limits;
// acked when a pool worker accepts it (early ack) or after its result is
// stored (acks_late). A pool worker's death fails it with WorkerLostError,
// or under acks_late + reject_on_worker_lost requeues it.
//
// Shutdown. Warm (RequestShutdown(false)): stop taking messages, put back
// those not started, let the running ones finish and record them. Cold
// (RequestShutdown(true), or a second warm request): terminate the pool
// now; under acks_late every message not finished is put back, under
// early ack the running ones are recorded as WorkerLostError. Either way
// every message held ends acked-with-a-result or back in its queue.
//
// Threads: Run()'s (consuming), the result writer's, the pool's event
// thread (callbacks) and the control server's. `mu_` guards what they
// share.

#ifndef FORKSERVER_LIB_CELERY_WORKER_H_
#define FORKSERVER_LIB_CELERY_WORKER_H_

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lib/celery/control.h"
#include "lib/celery/kombu_broker.h"
#include "lib/celery/message.h"
#include "lib/celery/outcome.h"
#include "lib/celery/result_writer.h"
#include "lib/celery/worker_options.h"
#include "lib/forkserver.h"

namespace forkserver {
namespace celery {

class Worker {
 public:
  static absl::StatusOr<std::unique_ptr<Worker>> Create(WorkerOptions options);
  ~Worker();

  // Consumes until a shutdown completes.
  absl::Status Run();
  // Thread-safe. A second warm request is a cold one.
  void RequestShutdown(bool cold);
  // One line: held, running, done, failed, pool worker pids.
  std::string StatusLine() const;

 private:
  enum class State { kEta, kQueued, kRunning, kDone };
  struct Held {
    TaskMessage message;
    State state = State::kQueued;
    bool late = false;
    bool acked = false;
    pid_t pid = 0;
    std::optional<AsyncResult> job;
    absl::Time received;
    absl::Time started;
  };

  explicit Worker(WorkerOptions options);

  // worker.cc: the consuming loop and shutdown.
  absl::Status ConsumeUntilShutdown();
  absl::Status FetchSome(int capacity);
  void Maintain();
  void DispatchDue();
  void Shutdown();
  int Capacity() const;
  int CapacityLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Room to fetch, or stopping.
  bool CanFetchLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // worker_tasks.cc: one message's life.
  void Receive(std::string raw);
  // Holds the message; true if it should run now.
  bool Admit(TaskMessage message);
  void Submit(const std::string& tag);
  void OnAccepted(const std::string& tag, pid_t pid);
  void OnResult(const std::string& tag, const std::string& value);
  void OnError(const std::string& tag, const absl::Status& error);
  // Records `outcome` for the held message and (late, or never acked)
  // acks it; the entry goes when the writer is done.
  void Finish(Held& held, const TaskOutcome& outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutBack(Held& held, BrokerOp how) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFinished(const std::string& tag);
  bool IsRevoked(const std::string& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // worker_control.cc: remote-control handlers.
  std::map<std::string, ControlHandler> ControlHandlers();
  nlohmann::json Revoke(const nlohmann::json& arguments);
  nlohmann::json Stats() const;

  const WorkerOptions options_;
  RedisClient broker_client_;
  KombuBroker broker_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<ResultWriter> writer_;
  std::unique_ptr<ControlServer> control_;
  int prefetch_limit_ = 0;

  mutable absl::Mutex mu_;
  std::map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  // (eta, tag) of messages waiting for their eta.
  std::set<std::pair<absl::Time, std::string>> etas_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> revoked_ ABSL_GUARDED_BY(mu_);
  // Tags whose running job we terminated for a revoke.
  std::set<std::string> terminating_ ABSL_GUARDED_BY(mu_);
  int64_t succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<bool> stop_consuming_{false};
  std::atomic<bool> cold_{false};
  absl::Time last_maintain_ = absl::InfinitePast();
};

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_WORKER_H_
