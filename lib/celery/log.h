// File: lib/celery/log.h
// -----------------------------------------------------------------------------
// The worker's log lines, in Celery's shape, on stderr:
//
//   [2024-05-01 12:00:00,123: INFO/MainProcess] Task forkserver.add[…] succeeded in 0.001s: 3
//
// Thread-safe (one write(2) per line). The level is process-wide.

#ifndef FORKSERVER_LIB_CELERY_LOG_H_
#define FORKSERVER_LIB_CELERY_LOG_H_

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace forkserver {
namespace celery {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kCritical = 4 };

// "debug", "INFO", "warning", ... (case-insensitive); INVALID_ARGUMENT else.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, absl::string_view message);

template <typename... Args>
void Log(LogLevel level, const Args&... args) {
  if (LogEnabled(level)) LogLine(level, absl::StrCat(args...));
}

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_LOG_H_
