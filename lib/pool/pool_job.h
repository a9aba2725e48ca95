// File: lib/pool/pool_job.h
// -----------------------------------------------------------------------------
// The shared state of one pool job (an apply, a map, an imap), between the
// pool's event processing, which fills it in, and the result handles
// (lib/pool_results.h) that wait on it. Internal to the library.

#ifndef FORKSERVER_LIB_POOL_POOL_JOB_H_
#define FORKSERVER_LIB_POOL_POOL_JOB_H_

#include <sys/types.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/pool/pool_errors.h"
#include "lib/pool/pool_job_items.h"

namespace forkserver {

// Per-call settings (Pool::ApplyAsync and friends).
struct CallOptions {
  // Hard and soft time limits, counted from the worker's acknowledgement.
  // nullopt: the pool's default. A value is honoured as given (zero is
  // zero), unlike billiard where 0 meant "default" and per-call limits
  // needed enable_timeouts.
  std::optional<absl::Duration> timeout;
  std::optional<absl::Duration> soft_timeout;
  std::optional<absl::Duration> lost_worker_timeout;
  // Map, Starmap, Imap: items per task. nullopt: ceil(n / (4 * processes))
  // for Map/Starmap (billiard's default), 1 for Imap.
  std::optional<int> chunksize;
  // putlocks override for this call: block until a worker slot is free.
  std::optional<bool> wait_for_slot;

  // Callbacks run on the pool's event thread (or in the caller's event
  // loop when threads = false), never under the pool's lock. Exceptions
  // they throw are caught, logged and counted (Pool::CallbackErrors()).
  std::function<void(const std::string& value)> callback;  // Apply
  std::function<void(const std::vector<std::string>& values)>
      map_callback;                                         // Map, Starmap
  std::function<void(const absl::Status& error)> error_callback;
  // On each acknowledgement: the worker's pid and when it accepted.
  std::function<void(pid_t pid, absl::Time accepted)> accept_callback;
  // When a soft (soft = true) or hard time limit fires.
  std::function<void(bool soft, absl::Duration limit)> timeout_callback;
};

class PoolCore;

namespace internal {

enum class JobKind { kApply, kMap, kImap, kImapUnordered };

struct JobState {
  JobId id = 0;
  JobKind kind = JobKind::kApply;
  std::string task;
  CallOptions options;
  // Lets a waiter drive the pool's events when it runs without threads.
  std::weak_ptr<PoolCore> driver;

  absl::Mutex mutex;
  // One slot per item; filled as outcomes arrive.
  JobItems items ABSL_GUARDED_BY(mutex);
  // Ready: every item done (apply, imap), or all done or the first failure
  // (map).
  bool ready ABSL_GUARDED_BY(mutex) = false;
  absl::Status failure ABSL_GUARDED_BY(mutex);
  int chunks = 0;
  int chunks_accepted ABSL_GUARDED_BY(mutex) = 0;
  std::vector<pid_t> worker_pids ABSL_GUARDED_BY(mutex);
  // Imap: the next index to hand out (ordered), or completed indices in
  // completion order (unordered).
  size_t next_ordered ABSL_GUARDED_BY(mutex) = 0;
  std::deque<size_t> completed_order ABSL_GUARDED_BY(mutex);
  size_t yielded ABSL_GUARDED_BY(mutex) = 0;
  bool cancelled ABSL_GUARDED_BY(mutex) = false;
  // Holds a put-lock slot until ready.
  bool holds_slot = false;

  bool Ready() {
    absl::MutexLock lock(&mutex);
    return ready;
  }
};

// Waits until `done` holds (under job->mutex) or `deadline`; drives the
// pool's events while waiting when the pool runs without threads.
bool WaitFor(JobState& job, absl::Time deadline,
             const std::function<bool()>& done);

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_JOB_H_
