// Tasks only the tests use, served by tests/celery:test_worker next to the
// example ones:
//
//   test.record(path, seconds)  appends "<pid>\n" to path, sleeps
//                               (ignoring the soft limit), returns the pid
//   test.crash_once(marker)     the first run creates marker and dies of
//                               SIGKILL; later runs return "survived"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <ctime>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/celery/task_registry.h"

namespace forkserver {
namespace celery {
namespace {

using nlohmann::json;

absl::StatusOr<json> Record(const TaskCall& call) {
  absl::StatusOr<json> path = call.Arg(0, "path");
  absl::StatusOr<json> seconds = call.Arg(1, "seconds");
  if (!path.ok()) return path.status();
  if (!seconds.ok()) return seconds.status();
  if (!path->is_string() || !seconds->is_number()) {
    return TaskFailure("TypeError", "record(path: str, seconds: number)");
  }
  const int fd = ::open(path->get<std::string>().c_str(),
                        O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return TaskFailure("OSError", "cannot open the record file");
  const std::string line = absl::StrCat(::getpid(), "\n");
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
  const absl::Time until = absl::Now() + absl::Seconds(seconds->get<double>());
  while (absl::Now() < until) {
    timespec ts = absl::ToTimespec(std::min(until - absl::Now(), absl::Milliseconds(10)));
    ::nanosleep(&ts, nullptr);
  }
  return ::getpid();
}
FORKSERVER_CELERY_TASK("test.record", Record);

absl::StatusOr<json> CrashOnce(const TaskCall& call) {
  absl::StatusOr<json> marker = call.Arg(0, "marker");
  if (!marker.ok()) return marker.status();
  if (!marker->is_string()) return TaskFailure("TypeError", "marker: str");
  const int fd = ::open(marker->get<std::string>().c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    ::raise(SIGKILL);
  }
  return "survived";
}
FORKSERVER_CELERY_TASK("test.crash_once", CrashOnce);

}  // namespace
}  // namespace celery
}  // namespace forkserver
