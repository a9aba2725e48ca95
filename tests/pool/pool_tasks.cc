#include "tests/pool/pool_tasks.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/proto/test_messages.pb.h"

namespace forkserver {
namespace testing {
namespace {

absl::StatusOr<int> Square(const int& x, TaskContext&) { return x * x; }
FORKSERVER_REGISTER_TASK(Square);

absl::StatusOr<int> Add(const int& a, const int& b, TaskContext&) {
  return a + b;
}
FORKSERVER_REGISTER_TASK(Add);

absl::StatusOr<std::string> Echo(const std::string& s, TaskContext&) {
  return s;
}
FORKSERVER_REGISTER_TASK(Echo);

absl::StatusOr<int> Length(const std::string& s, TaskContext&) {
  return static_cast<int>(s.size());
}
FORKSERVER_REGISTER_TASK(Length);

absl::StatusOr<std::string> MakeBytes(const int& n, TaskContext&) {
  return std::string(static_cast<size_t>(n), 'r');
}
FORKSERVER_REGISTER_TASK(MakeBytes);

absl::StatusOr<SquareReply> SquareMessage(const SquareRequest& request,
                                          TaskContext& context) {
  SquareReply reply;
  reply.set_square(request.value() * request.value());
  reply.set_label(request.label());
  reply.set_worker_index(context.worker_index());
  return reply;
}
FORKSERVER_REGISTER_TASK(SquareMessage);

absl::StatusOr<int> TouchFile(const std::string& path, TaskContext&) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ::close(fd);
  return ::getpid();
}
FORKSERVER_REGISTER_TASK(TouchFile);

absl::StatusOr<int> WorkerPid(const int&, TaskContext&) { return ::getpid(); }
FORKSERVER_REGISTER_TASK(WorkerPid);

absl::StatusOr<int> WorkerIndex(const int&, TaskContext& context) {
  return context.worker_index();
}
FORKSERVER_REGISTER_TASK(WorkerIndex);

absl::StatusOr<int> FailWith(const std::string& message, TaskContext&) {
  return absl::InvalidArgumentError(message);
}
FORKSERVER_REGISTER_TASK(FailWith);

absl::StatusOr<int> ThrowRuntimeError(const std::string& message,
                                      TaskContext&) {
  throw std::runtime_error(message);
}
FORKSERVER_REGISTER_TASK(ThrowRuntimeError);

// Sleeps `ms`, resuming after signals (nanosleep returns EINTR on
// SIGUSR1); stops early when `stop` says so.
template <typename Stop>
bool SleepFor(int ms, Stop stop) {
  const absl::Time end = absl::Now() + absl::Milliseconds(ms);
  while (absl::Now() < end) {
    if (stop()) return true;
    const absl::Duration left = std::min(end - absl::Now(), absl::Milliseconds(5));
    timespec ts = absl::ToTimespec(left);
    ::nanosleep(&ts, nullptr);
  }
  return stop();
}

absl::StatusOr<int> IgnoreSigtermAndSleep(const int& ms, TaskContext&) {
  ::signal(SIGTERM, SIG_IGN);
  SleepFor(ms, [] { return false; });
  return ms;
}
FORKSERVER_REGISTER_TASK(IgnoreSigtermAndSleep);

absl::StatusOr<int> SleepMillis(const int& ms, TaskContext&) {
  SleepFor(ms, [] { return false; });
  return ::getpid();
}
FORKSERVER_REGISTER_TASK(SleepMillis);

absl::StatusOr<std::string> SleepUntilSoftLimit(const int& max_ms,
                                                TaskContext& context) {
  if (SleepFor(max_ms, [&] { return context.SoftTimeLimitExceeded(); })) {
    return std::string("recovered");
  }
  return std::string("finished");
}
FORKSERVER_REGISTER_TASK(SleepUntilSoftLimit);

absl::StatusOr<int> IgnoreSoftLimit(const int& ms, TaskContext&) {
  SleepFor(ms, [] { return false; });
  return ms;
}
FORKSERVER_REGISTER_TASK(IgnoreSoftLimit);

absl::StatusOr<int> ExitWorker(const int& code, TaskContext&) {
  if (code < 0) ::raise(-code);
  ::_exit(code);
}
FORKSERVER_REGISTER_TASK(ExitWorker);

absl::StatusOr<int> AllocateMib(const int& mib, TaskContext&) {
  std::vector<char> memory(static_cast<size_t>(mib) << 20);
  for (size_t i = 0; i < memory.size(); i += 4096) memory[i] = 1;
  return ::getpid();
}
FORKSERVER_REGISTER_TASK(AllocateMib);

// Forks a grandchild (which ignores SIGTERM when `stubborn`), reports its
// pid in `report_path`, and never returns.
int ForkGrandchildAndHang(const std::string& report_path, bool stubborn) {
  const pid_t child = ::fork();
  if (child == 0) {
    if (stubborn) ::signal(SIGTERM, SIG_IGN);
    while (true) ::pause();
  }
  // Tell the test about the grandchild now; the task never returns.
  const std::string pid = absl::StrCat(child);
  const std::string partial = report_path + ".partial";
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  (void)!::write(fd, pid.data(), pid.size());
  ::close(fd);
  ::rename(partial.c_str(), report_path.c_str());
  while (true) ::pause();
}

absl::StatusOr<int> ForkGrandchild(const std::string& report_path,
                                   TaskContext&) {
  return ForkGrandchildAndHang(report_path, /*stubborn=*/false);
}
FORKSERVER_REGISTER_TASK(ForkGrandchild);

// The worker dies of the hard limit's SIGTERM at once; its grandchild
// ignores SIGTERM and must still go (the group's SIGKILL at the worker's
// death).
absl::StatusOr<int> ForkStubbornGrandchild(const std::string& report_path,
                                           TaskContext&) {
  return ForkGrandchildAndHang(report_path, /*stubborn=*/true);
}
FORKSERVER_REGISTER_TASK(ForkStubbornGrandchild);

int initializer_runs = 0;

FORKSERVER_INITIALIZER(InitCounter, absl::string_view arg) {
  ++initializer_runs;
  return absl::OkStatus();
}

FORKSERVER_INITIALIZER(InitFails, absl::string_view arg) {
  return absl::UnavailableError(absl::StrCat("cannot reach ", arg));
}

absl::StatusOr<int> CountInitializerRuns(const int&, TaskContext&) {
  return initializer_runs;
}
FORKSERVER_REGISTER_TASK(CountInitializerRuns);

FORKSERVER_EXIT_HOOK(RecordExit, pid_t pid, int code) {
  const char* path = std::getenv("FORKSERVER_TEST_EXIT_LOG");
  if (path == nullptr) return;
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  const std::string line = absl::StrCat(pid, " ", code, "\n");
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

}  // namespace
}  // namespace testing
}  // namespace forkserver
