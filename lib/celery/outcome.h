// File: lib/celery/outcome.h
// -----------------------------------------------------------------------------
// How a task ended, and how Celery's Redis result backend records it.
//
// A TaskOutcome is SUCCESS with a JSON value, or FAILURE / REVOKED with a
// serialised Python exception: {"exc_type", "exc_message": [args...],
// "exc_module"}, which Celery's client turns back into that exception in
// AsyncResult.get() (celery/backends/base.py, exception_to_python).
// ResultMeta() is the JSON stored under "celery-task-meta-<id>" and
// published on that channel, field for field as Celery 5.2 writes it:
// status, result, traceback, children, date_done (naive UTC ISO 8601),
// [group_id], [parent_id], task_id.

#ifndef FORKSERVER_LIB_CELERY_OUTCOME_H_
#define FORKSERVER_LIB_CELERY_OUTCOME_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/celery/message.h"
#include "nlohmann/json.hpp"

namespace forkserver {
namespace celery {

struct TaskOutcome {
  std::string state;        // "SUCCESS", "FAILURE" or "REVOKED"
  nlohmann::json result;    // the value, or the serialised exception
  std::string traceback;    // "" is stored as null

  static TaskOutcome Success(nlohmann::json value);
  static TaskOutcome Failure(absl::string_view type, absl::string_view module,
                             nlohmann::json args, std::string traceback);
  // Celery's TaskRevokedError(reason): "revoked", "expired", "terminated".
  static TaskOutcome Revoked(absl::string_view reason);

  bool ok() const { return state == "SUCCESS"; }
  // "3" for a success, "RuntimeError('boom')" otherwise: for log lines.
  std::string Summary() const;

  // The outcome as carried from a pool worker back to the worker process.
  nlohmann::json ToJson() const;
  // INVALID_ARGUMENT for anything ToJson() would not have written.
  static absl::Status FromJson(const std::string& text, TaskOutcome* outcome);
};

// The outcome of a job that did not return one: the pool's own errors
// (lib/pool_errors.h) as billiard's exceptions (WorkerLostError,
// TimeLimitExceeded, SoftTimeLimitExceeded), Terminated as a revoke.
TaskOutcome OutcomeFromPoolError(const absl::Status& error,
                                 std::optional<absl::Duration> hard_limit);

// The backend's record for `message`.
std::string ResultMeta(const TaskMessage& message, const TaskOutcome& outcome,
                       absl::Time date_done);

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_OUTCOME_H_
