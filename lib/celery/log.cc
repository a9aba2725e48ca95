#include "lib/celery/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace forkserver {
namespace celery {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kWarning)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARNING";
    case LogLevel::kError: return "ERROR";
    case LogLevel::kCritical: return "CRITICAL";
  }
  return "?";
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warning" || lower == "warn") return LogLevel::kWarning;
  if (lower == "error") return LogLevel::kError;
  if (lower == "critical" || lower == "fatal") return LogLevel::kCritical;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level '", name, "' (debug, info, warning, error, critical)"));
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level; }

void LogLine(LogLevel level, absl::string_view message) {
  const absl::Time now = absl::Now();
  const std::string line = absl::StrCat(
      "[", absl::FormatTime("%Y-%m-%d %H:%M:%E3S", now, absl::LocalTimeZone()),
      ": ", LevelName(level), "/MainProcess] ", message, "\n");
  // One write per line, so lines from several threads never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace celery
}  // namespace forkserver
