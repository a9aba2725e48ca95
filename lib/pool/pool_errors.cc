#include "lib/pool/pool_errors.h"

#include <cmath>
#include <csignal>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/pool.pb.h"

namespace forkserver {
namespace {

constexpr char kKindUrl[] = "type.forkserver/PoolError";
constexpr char kTaskErrorUrl[] = "type.forkserver/TaskError";

absl::Status WithKind(absl::Status status, PoolError kind) {
  status.SetPayload(kKindUrl, absl::Cord(PoolErrorName(kind)));
  return status;
}

std::string Plural(int64_t n, const char* unit) {
  return absl::StrCat(n, " ", unit, n == 1 ? "" : "s");
}

}  // namespace

const char* PoolErrorName(PoolError error) {
  switch (error) {
    case PoolError::kWorkerLost:
      return "WorkerLost";
    case PoolError::kTimeLimitExceeded:
      return "TimeLimitExceeded";
    case PoolError::kSoftTimeLimitExceeded:
      return "SoftTimeLimitExceeded";
    case PoolError::kTerminated:
      return "Terminated";
    case PoolError::kRestartFreqExceeded:
      return "RestartFreqExceeded";
    case PoolError::kTaskError:
      return "TaskError";
    case PoolError::kCancelled:
      return "Cancelled";
  }
  return "unknown";
}

std::optional<PoolError> GetPoolError(const absl::Status& status) {
  absl::optional<absl::Cord> kind = status.GetPayload(kKindUrl);
  if (!kind.has_value()) return std::nullopt;
  for (PoolError error :
       {PoolError::kWorkerLost, PoolError::kTimeLimitExceeded,
        PoolError::kSoftTimeLimitExceeded, PoolError::kTerminated,
        PoolError::kRestartFreqExceeded, PoolError::kTaskError,
        PoolError::kCancelled}) {
    if (*kind == PoolErrorName(error)) return error;
  }
  return std::nullopt;
}

std::optional<TaskErrorInfo> GetTaskErrorInfo(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kTaskErrorUrl);
  if (!payload.has_value()) return std::nullopt;
  wire::TaskError error;
  if (!error.ParseFromString(std::string(*payload))) return std::nullopt;
  return TaskErrorInfo{error.type(), error.message(), error.context()};
}

std::string DescribeExitCode(int exitcode) {
  if (exitcode < 0) {
    const char* name = sigabbrev_np(-exitcode);
    if (name == nullptr) return absl::StrCat("signal ", -exitcode);
    return absl::StrCat("signal ", -exitcode, " (SIG", name, ")");
  }
  return absl::StrCat("exitcode ", exitcode);
}

std::string HumanDuration(absl::Duration duration) {
  const double seconds = absl::ToDoubleSeconds(duration);
  if (seconds < 1.0) {
    return Plural(std::llround(seconds * 1000), "millisecond");
  }
  if (seconds < 60.0) {
    if (seconds == std::floor(seconds)) {
      return Plural(static_cast<int64_t>(seconds), "second");
    }
    return absl::StrFormat("%.3g seconds", seconds);
  }
  const int64_t whole = static_cast<int64_t>(seconds);
  std::string text = Plural(whole / 60, "minute");
  if (whole % 60 != 0) absl::StrAppend(&text, " ", Plural(whole % 60, "second"));
  return text;
}

absl::Status WorkerLostError(int exitcode, JobId job, absl::string_view reason) {
  return WithKind(absl::AbortedError(absl::StrCat(
                      "Worker exited prematurely: ", DescribeExitCode(exitcode),
                      reason.empty() ? "" : " (", reason, reason.empty() ? "" : ")",
                      " Job: ", job, ".")),
                  PoolError::kWorkerLost);
}

absl::Status TimeLimitExceededError(absl::Duration limit, JobId job) {
  return WithKind(absl::DeadlineExceededError(absl::StrCat(
                      "TimeLimitExceeded: job ", job,
                      " ran past its hard time limit of ",
                      HumanDuration(limit))),
                  PoolError::kTimeLimitExceeded);
}

absl::Status SoftTimeLimitExceededError() {
  return WithKind(absl::DeadlineExceededError("SoftTimeLimitExceeded()"),
                  PoolError::kSoftTimeLimitExceeded);
}

absl::Status TerminatedError(JobId job, int signal) {
  return WithKind(absl::CancelledError(absl::StrCat(
                      "Terminated: job ", job, " was terminated by ",
                      DescribeExitCode(-signal))),
                  PoolError::kTerminated);
}

absl::Status RestartFreqExceededError(int restarts, absl::Duration window) {
  const std::string how =
      window == absl::InfiniteDuration()
          ? absl::StrCat(restarts, " workers in a row died before starting")
          : absl::StrCat(restarts, " in ", absl::FormatDuration(window));
  return WithKind(
      absl::ResourceExhaustedError(absl::StrCat(
          "RestartFreqExceeded: ", how,
          " (workers keep failing; the pool is closed)")),
      PoolError::kRestartFreqExceeded);
}

absl::Status CancelledJobError(JobId job) {
  return WithKind(absl::CancelledError(absl::StrCat(
                      "job ", job, " was cancelled before it started")),
                  PoolError::kCancelled);
}

absl::Status TaskErrorStatus(absl::StatusCode code, const TaskErrorInfo& info) {
  if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
  absl::Status status(code, info.type == "absl::Status"
                                ? info.message
                                : absl::StrCat(info.type, ": ", info.message));
  wire::TaskError error;
  error.set_code(static_cast<int>(code));
  error.set_type(info.type);
  error.set_message(info.message);
  error.set_context(info.context);
  status.SetPayload(kTaskErrorUrl, absl::Cord(error.SerializeAsString()));
  return WithKind(std::move(status), PoolError::kTaskError);
}

}  // namespace forkserver
