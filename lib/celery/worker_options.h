// File: lib/celery/worker_options.h
// -----------------------------------------------------------------------------
// A worker's settings, named after `celery worker`'s options and Celery's
// configuration keys.

#ifndef FORKSERVER_LIB_CELERY_WORKER_OPTIONS_H_
#define FORKSERVER_LIB_CELERY_WORKER_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lib/celery/redis_url.h"

namespace forkserver {
namespace celery {

struct WorkerOptions {
  RedisUrl broker;          // --broker
  RedisUrl backend;         // --result-backend
  std::vector<std::string> queues = {"celery"};  // --queues
  int concurrency = 0;      // --concurrency; 0: the number of CPUs
  std::string hostname;     // --hostname, "celery@host" style
  // --prefetch-multiplier (worker_prefetch_multiplier): messages held
  // unacked = concurrency * this; 0: no limit.
  int prefetch_multiplier = 4;
  // task_acks_late / task_reject_on_worker_lost, worker-wide; a task's
  // registration can override acks_late.
  bool acks_late = false;
  bool reject_on_worker_lost = false;
  // --time-limit / --soft-time-limit: defaults for messages without
  // a timelimit header.
  std::optional<absl::Duration> time_limit;
  std::optional<absl::Duration> soft_time_limit;
  // --max-tasks-per-child / --max-memory-per-child (KiB).
  std::optional<int> max_tasks_per_child;
  std::optional<int64_t> max_memory_per_child_kib;
  // broker_transport_options visibility_timeout: an unacked message whose
  // index score is older than this is restored by any worker. Ours
  // refresh the scores of what they hold every `restore_interval`, so a
  // dead worker's messages are back in the queue at most
  // visibility_timeout + restore_interval after it died.
  absl::Duration visibility_timeout = absl::Hours(1);
  absl::Duration restore_interval = absl::Seconds(1);
  // result_expires.
  absl::Duration result_expires = absl::Hours(24);
  // Between a pool worker's death and its job failing with WorkerLost.
  absl::Duration lost_worker_timeout = absl::Seconds(1);
  // Answer remote control (ping, revoke, ...).
  bool enable_control = true;
};

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_WORKER_OPTIONS_H_
