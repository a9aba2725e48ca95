// File: lib/celery/result_writer.h
// -----------------------------------------------------------------------------
// The worker's writes, on a thread of their own with their own
// connections: results to the backend, then acks and restores to the
// broker, in the order they were queued, many per round trip.
//
//   writer.Submit({.tag = tag, .result_key = key, .meta = json,
//                  .broker = BrokerOp::kAck, .finishes = true});
//
// A result is stored as Celery's Redis backend stores it (SETEX with the
// result expiry, then PUBLISH on the same key), except that a SUCCESS
// already there is never overwritten (Celery's own rule, here atomic in a
// script): a task redelivered after its result was stored but before its
// ack cannot turn a success into something else.
//
// Nothing queued is dropped while the broker is down (or restarted and
// still loading its data: LOADING is UNAVAILABLE too): the batch is kept
// and retried with backoff. `on_finished(tag)` runs (on the writer's
// thread) after the write that ends a message's life (its ack, restore or
// requeue, with its result before it) succeeded. Stop() drains the queue,
// or gives up at its deadline and says what it left (acks not written
// leave messages in `unacked`, restored later by the visibility timeout:
// the task runs again, it is not lost).

#ifndef FORKSERVER_LIB_CELERY_RESULT_WRITER_H_
#define FORKSERVER_LIB_CELERY_RESULT_WRITER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/celery/kombu_broker.h"
#include "lib/celery/redis_client.h"

namespace forkserver {
namespace celery {

enum class BrokerOp {
  kNone,
  kAck,
  // kombu's restore: back to the consuming end of its queue.
  kRestore,
  // reject(requeue=True): to the far end, behind what is queued.
  kRequeue,
};

struct WriteOp {
  std::string tag;
  // Both empty: no result to store.
  std::string result_key;
  std::string meta;
  BrokerOp broker = BrokerOp::kNone;
  bool finishes = false;
};

class ResultWriter {
 public:
  ResultWriter(RedisUrl backend, RedisUrl broker, absl::Duration result_expires,
               std::function<void(const std::string& tag)> on_finished);
  ~ResultWriter();

  void Start();
  void Submit(WriteOp op);
  // Drains everything queued (until `deadline`), then ends the thread.
  void Stop(absl::Time deadline);
  size_t pending() const;

 private:
  void Loop();
  // Writes `batch` once; UNAVAILABLE leaves it to be retried whole.
  absl::Status Write(const std::vector<WriteOp>& batch);
  absl::Status WriteResults(const std::vector<WriteOp>& batch);
  absl::Status WriteBrokerOps(const std::vector<WriteOp>& batch);

  RedisClient backend_;
  RedisClient broker_client_;
  KombuBroker broker_;
  const std::string expires_seconds_;
  std::function<void(const std::string&)> on_finished_;

  mutable absl::Mutex mu_;
  std::deque<WriteOp> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;
};

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_RESULT_WRITER_H_
