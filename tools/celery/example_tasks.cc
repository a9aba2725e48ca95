// The worker's example tasks, for trying it from Python at once:
//
//   forkserver.add(x, y)        -> x + y
//   forkserver.sleep(seconds)   -> seconds (stops at its soft time limit)
//   forkserver.fail(message)    -> raises RuntimeError(message)
//   forkserver.getpid()         -> the pool worker's pid
//   forkserver.noop()           -> None (for benchmarks)

#include <unistd.h>

#include <ctime>

#include "absl/time/clock.h"
#include "lib/celery/task_registry.h"

namespace forkserver {
namespace celery {
namespace {

using nlohmann::json;

absl::StatusOr<json> Add(const TaskCall& call) {
  absl::StatusOr<json> x = call.Arg(0, "x");
  if (!x.ok()) return x.status();
  absl::StatusOr<json> y = call.Arg(1, "y");
  if (!y.ok()) return y.status();
  if (!x->is_number() || !y->is_number()) {
    return TaskFailure("TypeError", "add() needs two numbers");
  }
  if (x->is_number_integer() && y->is_number_integer()) {
    return x->get<int64_t>() + y->get<int64_t>();
  }
  return x->get<double>() + y->get<double>();
}
FORKSERVER_CELERY_TASK("forkserver.add", Add);

absl::StatusOr<json> Sleep(const TaskCall& call) {
  absl::StatusOr<json> seconds = call.Arg(0, "seconds");
  if (!seconds.ok()) return seconds.status();
  if (!seconds->is_number() || seconds->get<double>() < 0) {
    return TaskFailure("ValueError", "sleep() needs a number of seconds >= 0");
  }
  const absl::Time until = absl::Now() + absl::Seconds(seconds->get<double>());
  // In slices: the soft limit's SIGUSR1 interrupts nanosleep, and the
  // flag is checked between slices.
  while (absl::Now() < until) {
    if (call.context.SoftTimeLimitExceeded()) return SoftTimeLimitExceededError();
    timespec ts = absl::ToTimespec(std::min(until - absl::Now(), absl::Milliseconds(10)));
    ::nanosleep(&ts, nullptr);
  }
  return *seconds;
}
FORKSERVER_CELERY_TASK("forkserver.sleep", Sleep);

absl::StatusOr<json> Fail(const TaskCall& call) {
  absl::StatusOr<json> message = call.Arg(0, "message");
  if (!message.ok()) return message.status();
  return TaskFailure("RuntimeError", message->is_string()
                                         ? message->get<std::string>()
                                         : message->dump());
}
FORKSERVER_CELERY_TASK("forkserver.fail", Fail);

absl::StatusOr<json> GetPid(const TaskCall&) { return ::getpid(); }
FORKSERVER_CELERY_TASK("forkserver.getpid", GetPid);

absl::StatusOr<json> Noop(const TaskCall&) { return nullptr; }
FORKSERVER_CELERY_TASK("forkserver.noop", Noop);

}  // namespace
}  // namespace celery
}  // namespace forkserver
