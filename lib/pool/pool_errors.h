// File: lib/pool/pool_errors.h
// -----------------------------------------------------------------------------
// The ways a pool job can fail, as absl::Status with a payload that says
// which (billiard's exception types, C++-shaped), with the messages users
// of billiard and Celery recognise:
//
//   kind                   code                message
//   WorkerLost             ABORTED             Worker exited prematurely: signal 9 (SIGKILL) Job: 10.
//   TimeLimitExceeded      DEADLINE_EXCEEDED   TimeLimitExceeded: job 4 ran past its hard time limit of 2 seconds
//   SoftTimeLimitExceeded  DEADLINE_EXCEEDED   SoftTimeLimitExceeded() (returned by a task)
//   Terminated             CANCELLED           Terminated: job 7 was terminated by signal 15 (SIGTERM)
//   RestartFreqExceeded    RESOURCE_EXHAUSTED  RestartFreqExceeded: 200 in 1s
//                                              (or: 201 workers in a row died before starting)
//   TaskError              the task's code     the task's message (type and context in TaskErrorInfo)
//   Cancelled              CANCELLED           job 3 was cancelled before it started
//
//   if (forkserver::GetPoolError(status) == forkserver::PoolError::kWorkerLost) ...

#ifndef FORKSERVER_LIB_POOL_POOL_ERRORS_H_
#define FORKSERVER_LIB_POOL_POOL_ERRORS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace forkserver {

using JobId = int64_t;

enum class PoolError {
  kWorkerLost,
  kTimeLimitExceeded,
  kSoftTimeLimitExceeded,
  kTerminated,
  kRestartFreqExceeded,
  kTaskError,
  kCancelled,
};

// "WorkerLost", "TimeLimitExceeded", ...
const char* PoolErrorName(PoolError error);

// Which pool error `status` is, if any.
std::optional<PoolError> GetPoolError(const absl::Status& status);

// What a task error carries from the worker.
struct TaskErrorInfo {
  // "absl::Status" for a status the task returned; the C++ type of an
  // exception it threw ("std::runtime_error"); "DecodeError" when its
  // argument could not be decoded.
  std::string type;
  std::string message;
  // Task, job, worker pid and index: "task Square, job 12, worker pid
  // 4711 (index 1)".
  std::string context;
};
std::optional<TaskErrorInfo> GetTaskErrorInfo(const absl::Status& status);

// "exitcode 3" / "signal 9 (SIGKILL)" for an exit code (-N: signal N),
// billiard's human_status().
std::string DescribeExitCode(int exitcode);

// "2 seconds", "1.5 seconds", "250 milliseconds", "1 minute 30 seconds".
std::string HumanDuration(absl::Duration duration);

// `reason` (e.g. "killed by its sandbox: wall time limit") follows the
// exit code when not empty.
absl::Status WorkerLostError(int exitcode, JobId job, absl::string_view reason = "");
absl::Status TimeLimitExceededError(absl::Duration limit, JobId job);
// For a task to return when it stops at its soft limit.
absl::Status SoftTimeLimitExceededError();
absl::Status TerminatedError(JobId job, int signal);
// `window` infinite: `restarts` workers in a row failed to start.
absl::Status RestartFreqExceededError(int restarts, absl::Duration window);
absl::Status CancelledJobError(JobId job);
absl::Status TaskErrorStatus(absl::StatusCode code, const TaskErrorInfo& info);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_ERRORS_H_
