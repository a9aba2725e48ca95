// PoolCore's worker set: starting workers into free slots, keeping the
// pool at size, signalling workers, and what a worker's death means for
// the jobs it held.

#include "lib/pool/pool_core.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <set>

#include "absl/strings/str_cat.h"
#include "lib/pool/pool_worker.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"
#include "lib/pool/pool_event_tags.h"

namespace forkserver {

using internal::kChannel;
using internal::kSentinel;
using internal::Watch;

namespace {

// Exit status unknown (the fork server went away before reporting it).
constexpr int kUnknownExit = INT_MIN;
// Retry delay after a worker failed to start.
constexpr absl::Duration kStartRetryDelay = absl::Milliseconds(100);

std::string Describe(int exitcode) {
  return exitcode == kUnknownExit
             ? "an unknown status (the fork server went away)"
             : DescribeExitCode(exitcode);
}

// Why a sandboxed worker's sandbox ended it, or "" (no sandbox, or it
// ended on its own).
std::string SandboxKill(const Process& process) {
  const std::optional<wire::ExecutionStats> stats = process.execution_stats();
  if (!stats.has_value()) return "";
  switch (stats->kill_reason()) {
    case wire::KILL_REASON_WALL_TIME:
      return "killed by its sandbox: wall time limit";
    case wire::KILL_REASON_CPU_TIME:
      return "killed by its sandbox: CPU time limit";
    case wire::KILL_REASON_MEMORY:
      return "killed by its sandbox: memory limit (OOM in its cgroup)";
    case wire::KILL_REASON_PIDS:
      return "its sandbox's pids limit was hit";
    case wire::KILL_REASON_SECCOMP:
      return absl::StrCat("killed by its sandbox: seccomp denied ",
                          stats->seccomp_syscall());
    default:
      return "";
  }
}

}  // namespace

// Runs without mu_: Process::Start is a request to the fork server (up to
// its request timeout, longer while the server launches), and the pool's
// other callers must not wait behind it.
absl::StatusOr<std::unique_ptr<PoolCore::Worker>> PoolCore::LaunchWorker(
    int index, bool initial) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoError("socketpair for a pool worker");
  }
  UniqueFd parent_end(pair[0]), child_end(pair[1]);
  wire::WorkerConfig config;
  config.set_index(index);
  config.set_initializer(options_.initializer);
  config.set_initializer_arg(options_.initializer_arg);
  config.set_exit_hook(options_.on_process_exit);
  config.set_max_tasks(options_.maxtasksperchild.value_or(0));
  config.set_max_memory_kib(options_.max_memory_per_child_kib.value_or(0));
  config.set_synack(options_.synack);

  ProcessOptions process_options;
  process_options.name = absl::StrCat("PoolWorker-", index);
  // The fork server kills a daemon's worker if this process dies.
  process_options.daemon = true;
  process_options.start_method = options_.start_method;
  process_options.fds = {{child_end.get(), kPoolChannelFd}};
  process_options.sandbox = options_.sandbox;
  auto process = std::make_unique<Process>(
      kPoolWorkerEntry, config.SerializeAsString(), process_options);
  RETURN_IF_ERROR(StartWorkerProcess(*process));
  child_end.reset();
  ::fcntl(parent_end.get(), F_SETFL, O_NONBLOCK);

  auto worker = std::make_unique<Worker>();
  worker->index = index;
  worker->initial = initial;
  worker->process = std::move(process);
  worker->channel = std::move(parent_end);
  return worker;
}

// A forked worker inherits every lock as it was at the fork, held by
// threads it does not have: had the helper thread been inside glibc's or
// ASan's allocator, or a caller inside mu_, the worker would wait for ever
// on its first allocation (seen under ASan, where a CI run hung an hour in
// FrameReader::Fill's new[]). So a fork waits until no callback runs
// (fork_gate_) and no caller is inside mu_. Threads the application owns
// are its own affair: the "fork" start method's documented rule. A fork
// from within one of our callbacks (Grow in on_process_up, say) is on the
// thread that holds the gate shared: it takes only mu_.
absl::Status PoolCore::StartWorkerProcess(Process& process) {
  if (process.start_method() != StartMethod::kFork) return process.Start();
  if (DeliveringOnThisThread()) {
    absl::MutexLock lock(&mu_);
    return process.Start();
  }
  absl::WriterMutexLock gate(&fork_gate_);
  absl::MutexLock lock(&mu_);
  return process.Start();
}

void PoolCore::AdoptWorker(std::unique_ptr<Worker> worker) {
  starting_.erase(worker->index);
  worker->serial = ++next_serial_;
  Watch(epoll_.get(), worker->channel.get(), kChannel, worker->serial);
  Watch(epoll_.get(), worker->process->sentinel(), kSentinel, worker->serial);
  WorkerInfo info{worker->index, worker->process->pid(), std::nullopt, ""};
  Worker& adopted = *worker;
  workers_[worker->serial] = std::move(worker);
  if (options_.on_process_up) {
    Deliver([callback = options_.on_process_up, info] { callback(info); });
  }
  if (state_ == State::kTerminate || !failure_.ok()) {
    // The pool stopped while this worker started: it goes at once, and is
    // reaped like the others.
    adopted.controlled = true;
    adopted.retiring = true;
    KillGroup(adopted, SIGKILL);
    return;
  }
  if (!SlotWanted(adopted)) {
    // Shrink() ran while it started, and its slot is no longer wanted:
    // retire it as Shrink would have, so at most processes_ workers stay.
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(adopted, message);
    FlushWorker(adopted);
    adopted.retiring = true;
    adopted.controlled = true;
  }
}

bool PoolCore::SlotWanted(const Worker& worker) const {
  if (worker.index >= processes_) return false;
  for (const auto& [serial, other] : workers_) {
    if (other.get() != &worker && !other->retiring &&
        other->index == worker.index) {
      return false;
    }
  }
  return true;
}

std::vector<int> PoolCore::PlanStarts() {
  if (state_ == State::kTerminate || !failure_.ok()) return {};
  if (MonotonicNow() < next_maintenance_ &&
      next_maintenance_ != absl::InfiniteFuture()) {
    return {};
  }
  next_maintenance_ = absl::InfiniteFuture();
  // Closing pools still replace workers while work remains.
  const bool work_left = !queue_.empty();
  if (state_ == State::kClose && !work_left) return {};
  std::set<int> taken(starting_.begin(), starting_.end());
  for (const auto& [serial, worker] : workers_) {
    if (!worker->retiring) taken.insert(worker->index);
  }
  std::vector<int> slots;
  while (static_cast<int>(taken.size()) < processes_) {
    int index = 0;
    while (taken.count(index) > 0) ++index;  // Lowest free slot.
    taken.insert(index);
    starting_.insert(index);
    slots.push_back(index);
  }
  return slots;
}

void PoolCore::StartPlanned(std::vector<int> slots) {
  for (size_t i = 0; i < slots.size(); ++i) {
    absl::StatusOr<std::unique_ptr<Worker>> worker =
        LaunchWorker(slots[i], /*initial=*/false);
    absl::MutexLock lock(&mu_);
    if (worker.ok()) {
      AdoptWorker(*std::move(worker));
      continue;
    }
    // Give the rest of the slots back; they are tried again after a delay
    // (or never, if the restart limiter trips).
    for (size_t j = i; j < slots.size(); ++j) starting_.erase(slots[j]);
    Log(absl::StrCat("could not start PoolWorker-", slots[i], ": ",
                     worker.status().ToString()));
    absl::Status limited = limiter_.Step(MonotonicNow(), /*started=*/false);
    if (!limited.ok()) {
      TripRestartLimiter(limited);
    } else {
      next_maintenance_ = MonotonicNow() + kStartRetryDelay;
    }
    break;
  }
  absl::MutexLock lock(&mu_);
  DispatchQueued();
  RetireIdleWhenClosing();
  ArmTimer();
}

PoolCore::Worker* PoolCore::FindWorker(int64_t serial) {
  auto it = workers_.find(serial);
  return it == workers_.end() ? nullptr : it->second.get();
}

void PoolCore::KillGroup(Worker& worker, int signal) {
  // The worker leads its own process group (setsid at start): take any
  // children it made with it, and have the group SIGKILLed when the worker
  // ends, so a grandchild that ignores `signal` does not outlive it. The
  // group is signalled only while the worker is unreaped, by whoever reaps
  // it (this process or the fork server): never a reused pid.
  (void)worker.process->SignalGroup(signal);
}

void PoolCore::SendSoftLimit(Worker& worker, int64_t dispatch) {
  // SI_QUEUE carries which task the limit is for, so a late signal cannot
  // mark the worker's next task.
  siginfo_t info{};
  info.si_signo = SIGUSR1;
  info.si_code = SI_QUEUE;
  info.si_pid = ::getpid();
  info.si_uid = ::getuid();
  info.si_value.sival_int = static_cast<int>(dispatch & 0x7fffffff);
  if (::syscall(SYS_pidfd_send_signal, worker.process->sentinel(), SIGUSR1,
                &info, 0) != 0 &&
      errno != ESRCH) {
    (void)worker.process->Signal(SIGUSR1);
  }
}

// What becomes of the jobs a dead worker held: unsent ones are requeued
// (or cancelled when terminating); started ones fail now (hard limit,
// TerminateJob, Terminate) or after lost_worker_timeout.
void PoolCore::SettleOutstanding(Worker& worker, int exitcode, absl::Time now) {
  std::vector<int64_t> requeue;
  for (int64_t id : worker.outstanding) {
    auto it = dispatches_.find(id);
    if (it == dispatches_.end()) continue;
    Dispatch& dispatch = it->second;
    if (!dispatch.accepted) {
      requeue.push_back(id);
      continue;
    }
    if (dispatch.hard_fired) {
      timed_.erase(id);
      dispatches_.erase(it);
    } else if (worker.terminate_signal != 0 && worker.terminated_dispatch == id) {
      FailDispatch(dispatch, TerminatedError(dispatch.job->id,
                                             worker.terminate_signal));
      timed_.erase(id);
      dispatches_.erase(it);
    } else if (state_ == State::kTerminate) {
      FailDispatch(dispatch, TerminatedError(dispatch.job->id, SIGTERM));
      timed_.erase(id);
      dispatches_.erase(it);
    } else {
      // billiard's lost_worker_timeout: the job fails after it.
      dispatch.lost = true;
      dispatch.worker = 0;
      dispatch.lost_exitcode = exitcode;
      dispatch.lost_reason = worker.sandbox_kill;
      const std::optional<absl::Duration> lost =
          dispatch.job->options.lost_worker_timeout;
      dispatch.lost_deadline =
          now + lost.value_or(options_.lost_worker_timeout);
      timed_.insert(id);
    }
  }
  if (state_ == State::kTerminate) {
    for (int64_t id : requeue) {
      auto it = dispatches_.find(id);
      if (it == dispatches_.end()) continue;
      FailDispatch(it->second, CancelledJobError(it->second.job->id));
      dispatches_.erase(it);
    }
  } else {
    Requeue(std::move(requeue));
  }
}

void PoolCore::HandleDeath(int64_t serial) {
  Worker* found = FindWorker(serial);
  if (found == nullptr) return;
  Worker& worker = *found;
  // Whatever it sent before dying is in the socket: take it first, so a
  // result already sent is delivered, not reported lost.
  ReadChannel(worker);
  const int exitcode = worker.process->exitcode().value_or(kUnknownExit);
  worker.sandbox_kill = SandboxKill(*worker.process);
  if (worker.exit_reason.empty()) worker.exit_reason = worker.sandbox_kill;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, worker.channel.get(), nullptr);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, worker.process->sentinel(), nullptr);
  const pid_t pid = worker.process->pid();
  const absl::Time now = MonotonicNow();

  const bool clean = exitcode == 0 || exitcode == kRecycleExitCode;
  const bool controlled = worker.controlled || worker.terminate_signal != 0;
  if (!clean && !controlled) {
    Log(absl::StrCat("Process 'PoolWorker-", worker.index, "' pid:", pid,
                     " exited with '", Describe(exitcode), "'",
                     worker.exit_reason.empty() ? "" : ": ",
                     worker.exit_reason));
  }
  if (worker.initial && !worker.up) initial_died_ = true;

  SettleOutstanding(worker, exitcode, now);

  if (options_.on_process_down) {
    WorkerInfo info{worker.index, pid,
                    exitcode == kUnknownExit ? std::nullopt
                                             : std::optional<int>(exitcode),
                    worker.exit_reason};
    Deliver([callback = options_.on_process_down, info] { callback(info); });
  }
  const bool started = worker.up;
  workers_.erase(serial);  // `worker` is gone from here on.

  if (!clean && !controlled && state_ != State::kTerminate) {
    absl::Status limited = limiter_.Step(now, started);
    if (!limited.ok()) TripRestartLimiter(limited);
  }
}

void PoolCore::Requeue(std::vector<int64_t> dispatches) {
  // Back at the front, in their original order: they were next.
  for (auto it = dispatches.rbegin(); it != dispatches.rend(); ++it) {
    auto found = dispatches_.find(*it);
    if (found == dispatches_.end()) continue;
    found->second.worker = 0;
    queue_.push_front(*it);
  }
}

void PoolCore::TripRestartLimiter(absl::Status failure) {
  Log(std::string(failure.message()));
  failure_ = failure;
  state_ = State::kClose;
  // Everything not finished fails with the reason; the workers go.
  for (int64_t id : queue_) {
    auto it = dispatches_.find(id);
    if (it != dispatches_.end()) FailDispatch(it->second, failure);
  }
  for (int64_t id : queue_) dispatches_.erase(id);
  queue_.clear();
  for (auto& [id, dispatch] : dispatches_) FailDispatch(dispatch, failure);
  dispatches_.clear();
  timed_.clear();
  for (auto& [serial, worker] : workers_) {
    worker->controlled = true;
    worker->outstanding.clear();
    KillGroup(*worker, SIGKILL);
  }
}

}  // namespace forkserver
