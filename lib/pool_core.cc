#include "lib/pool_core.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "lib/child_handle.h"
#include "lib/monotonic_clock.h"
#include "lib/pool_worker.h"
#include "lib/registry.h"
#include "lib/status_macros.h"

namespace forkserver {
namespace {

// epoll_event.data.u64: what the descriptor is (top two bits) and, for a
// worker's descriptors, the worker's serial (never reused, unlike fds).
enum Tag : uint64_t { kWake = 0, kTimer = 1, kChannel = 2, kSentinel = 3 };
constexpr int kTagShift = 62;
constexpr uint64_t kSerialMask = (uint64_t{1} << kTagShift) - 1;

// A worker gets, beyond the task it runs, about this much measured work
// queued at it: enough to keep it busy between the pool's wake-ups, little
// enough that a long task does not hold up many others.
constexpr double kPrefetchBudgetUsec = 1000;
constexpr size_t kMaxWindow = 64;
// Exit status unknown (the fork server went away before reporting it).
constexpr int kUnknownExit = INT_MIN;
// Retry delay after a worker failed to start.
constexpr absl::Duration kStartRetryDelay = absl::Milliseconds(100);

std::atomic<JobId> next_job_id{1};

// Adds (EPOLL_CTL_ADD) or changes (EPOLL_CTL_MOD) `fd`'s registration.
void Watch(int epoll, int fd, uint64_t tag, int64_t serial,
           uint32_t events = EPOLLIN, int op = EPOLL_CTL_ADD) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = tag << kTagShift | (static_cast<uint64_t>(serial) & kSerialMask);
  ::epoll_ctl(epoll, op, fd, &event);
}

std::string Describe(int exitcode) {
  return exitcode == kUnknownExit
             ? "an unknown status (the fork server went away)"
             : DescribeExitCode(exitcode);
}

absl::Status CheckDuration(const char* name,
                           const std::optional<absl::Duration>& value) {
  if (value.has_value() && *value < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must not be negative, got ",
                     absl::FormatDuration(*value)));
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const PoolOptions& o) {
  if (o.processes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "processes must be at least 1 (or 0 for the number of CPUs), got ",
        o.processes));
  }
  if (o.maxtasksperchild.has_value() && *o.maxtasksperchild <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maxtasksperchild must be a positive number (or unset), got ",
        *o.maxtasksperchild));
  }
  RETURN_IF_ERROR(CheckDuration("timeout", o.timeout));
  RETURN_IF_ERROR(CheckDuration("soft_timeout", o.soft_timeout));
  RETURN_IF_ERROR(CheckDuration("lost_worker_timeout", o.lost_worker_timeout));
  RETURN_IF_ERROR(CheckDuration("hard_kill_grace", o.hard_kill_grace));
  if (o.max_restarts.has_value() && *o.max_restarts < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_restarts must not be negative, got ", *o.max_restarts));
  }
  if (o.max_restart_freq <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_restart_freq must be positive");
  }
  if (o.semaphore.has_value() && *o.semaphore <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("semaphore must be positive, got ", *o.semaphore));
  }
  if (o.max_memory_per_child_kib.has_value() &&
      *o.max_memory_per_child_kib <= 0) {
    return absl::InvalidArgumentError(
        "max_memory_per_child_kib must be positive (KiB), or unset");
  }
  if (!o.initializer.empty() && FindInitializer(o.initializer) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no initializer named '", o.initializer,
        "' is registered (FORKSERVER_INITIALIZER)"));
  }
  if (!o.on_process_exit.empty() && FindExitHook(o.on_process_exit) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no exit hook named '", o.on_process_exit,
        "' is registered (FORKSERVER_EXIT_HOOK)"));
  }
  if (o.start_method.has_value()) {
    RETURN_IF_ERROR(CheckStartMethodAllowed(*o.start_method));
  }
  return absl::OkStatus();
}

absl::Status ValidateCall(const CallOptions& o) {
  RETURN_IF_ERROR(CheckDuration("timeout", o.timeout));
  RETURN_IF_ERROR(CheckDuration("soft_timeout", o.soft_timeout));
  RETURN_IF_ERROR(CheckDuration("lost_worker_timeout", o.lost_worker_timeout));
  if (o.chunksize.has_value() && *o.chunksize <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunksize must be positive, got ", *o.chunksize));
  }
  return absl::OkStatus();
}

int ProcessCount(const PoolOptions& options) {
  if (options.processes > 0) return options.processes;
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}

}  // namespace

// ---------------------------------------------------------------- lifecycle

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      slots_(options_.semaphore.value_or(ProcessCount(options_))),
      processes_(ProcessCount(options_)),
      limiter_(options_.max_restarts.value_or(100 * ProcessCount(options_)),
               options_.max_restart_freq) {}

absl::StatusOr<std::shared_ptr<PoolCore>> PoolCore::Create(
    PoolOptions options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  (void)internal::PoolWorkerEntryName();  // Keeps the worker linked in.
  std::shared_ptr<PoolCore> core(new PoolCore(std::move(options)));
  core->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  core->wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  core->timer_.reset(
      ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!core->epoll_ || !core->wake_ || !core->timer_) {
    return ErrnoError("creating the pool's epoll, eventfd or timerfd");
  }
  Watch(core->epoll_.get(), core->wake_.get(), kWake, 0);
  Watch(core->epoll_.get(), core->timer_.get(), kTimer, 0);
  absl::Status start_failure;
  {
    absl::MutexLock lock(&core->mu_);
    for (int index = 0; index < core->processes_; ++index) {
      start_failure = core->StartWorker(index, /*initial=*/true);
      if (!start_failure.ok()) {
        core->state_ = State::kTerminate;
        for (auto& [serial, worker] : core->workers_) {
          worker->controlled = true;
          core->KillGroup(*worker, SIGKILL);
        }
        core->deliveries_.clear();
        break;
      }
    }
  }
  if (!start_failure.ok()) {
    // Reap the workers that did start, then say why the pool could not.
    while (true) {
      {
        absl::MutexLock lock(&core->mu_);
        if (core->workers_.empty()) break;
      }
      core->ProcessEvents(absl::Milliseconds(100));
    }
    core->deliveries_.clear();
    absl::MutexLock lock(&core->mu_);
    core->joined_ = true;
    return start_failure;
  }
  if (core->options_.threads) {
    // The helper thread owns a reference: a Pool destroyed from one of its
    // own callbacks stops the pool, and the core goes when this returns.
    core->loop_ = std::thread([self = core] {
      while (true) {
        self->ProcessEvents(absl::InfiniteDuration());
        absl::MutexLock lock(&self->mu_);
        if (self->state_ != State::kRun && self->Finished()) return;
      }
    });
  }
  core->RunDeliveries();
  return core;
}

PoolCore::~PoolCore() {
  // Pool::~Pool already stopped us; here only the thread is left. Its own
  // last reference may be what destroys us, on the thread itself.
  if (loop_.joinable()) {
    if (OnHelperThread()) {
      loop_.detach();
    } else {
      loop_.join();
    }
  }
}

void PoolCore::Shutdown() {
  bool running, joined;
  {
    absl::MutexLock lock(&mu_);
    running = state_ == State::kRun;
    joined = joined_;
  }
  // From a callback, Join() cannot wait for the helper thread; the pool
  // still stops, and the thread finishes it.
  if (running) {
    (void)Terminate();
  } else if (!joined) {
    (void)Join();
  }
}

bool PoolCore::OnHelperThread() const {
  return std::this_thread::get_id() == loop_.get_id();
}

void PoolCore::Log(absl::string_view line) {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "forkserver pool: %.*s\n",
                 static_cast<int>(line.size()), line.data());
  }
}

void PoolCore::Deliver(std::function<void()> callback) {
  deliveries_.push_back(std::move(callback));
}

void PoolCore::RunDeliveries() {
  std::vector<std::function<void()>> batch;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(deliveries_);
  }
  for (auto& callback : batch) {
    // billiard's P6/P7: a callback's error is reported, never swallowed,
    // and never takes the pool (or the application) down.
    try {
      callback();
    } catch (const std::exception& e) {
      ++callback_errors_;
      Log(absl::StrCat("pool callback raised an exception: ", e.what()));
    } catch (...) {
      ++callback_errors_;
      Log("pool callback raised a non-std exception");
    }
  }
}

void PoolCore::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
}

bool PoolCore::Finished() const {
  return workers_.empty() && dispatches_.empty() && queue_.empty();
}

absl::Status PoolCore::NotRunning() const {
  if (!failure_.ok()) return failure_;
  return absl::FailedPreconditionError(
      state_ == State::kClose ? "pool is closed" : "pool is terminated");
}

// ---------------------------------------------------------------- workers

absl::Status PoolCore::StartWorker(int index, bool initial) {
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
  auto process = std::make_unique<Process>(
      kPoolWorkerEntry, config.SerializeAsString(), process_options);
  RETURN_IF_ERROR(process->Start());
  child_end.reset();
  ::fcntl(parent_end.get(), F_SETFL, O_NONBLOCK);

  auto worker = std::make_unique<Worker>();
  worker->serial = ++next_serial_;
  worker->index = index;
  worker->initial = initial;
  worker->process = std::move(process);
  worker->channel = std::move(parent_end);
  Watch(epoll_.get(), worker->channel.get(), kChannel, worker->serial);
  Watch(epoll_.get(), worker->process->sentinel(), kSentinel, worker->serial);
  WorkerInfo info{index, worker->process->pid(), std::nullopt, ""};
  const int64_t serial = worker->serial;
  workers_[serial] = std::move(worker);
  if (options_.on_process_up) {
    Deliver([callback = options_.on_process_up, info] { callback(info); });
  }
  return absl::OkStatus();
}

void PoolCore::Maintain() {
  if (state_ == State::kTerminate || !failure_.ok()) return;
  if (MonotonicNow() < next_maintenance_ &&
      next_maintenance_ != absl::InfiniteFuture()) {
    return;
  }
  next_maintenance_ = absl::InfiniteFuture();
  // Closing pools still replace workers while work remains.
  const bool work_left = !queue_.empty();
  if (state_ == State::kClose && !work_left) return;
  std::set<int> taken;  // Slots of the workers that stay.
  for (const auto& [serial, worker] : workers_) {
    if (!worker->retiring) taken.insert(worker->index);
  }
  while (static_cast<int>(taken.size()) < processes_) {
    int index = 0;
    while (taken.count(index) > 0) ++index;  // Lowest free slot.
    absl::Status started = StartWorker(index, /*initial=*/false);
    if (!started.ok()) {
      Log(absl::StrCat("could not start PoolWorker-", index, ": ",
                       started.ToString()));
      absl::Status limited = limiter_.Step(MonotonicNow(), /*started=*/false);
      if (!limited.ok()) {
        TripRestartLimiter(limited);
        return;
      }
      next_maintenance_ = MonotonicNow() + kStartRetryDelay;
      return;
    }
    taken.insert(index);
  }
}

PoolCore::Worker* PoolCore::FindWorker(int64_t serial) {
  auto it = workers_.find(serial);
  return it == workers_.end() ? nullptr : it->second.get();
}

void PoolCore::KillGroup(Worker& worker, int signal) {
  const pid_t pid = worker.process->pid();
  if (pid <= 1 || !worker.process->IsAlive()) return;
  // The worker leads its own process group (setsid at start): take any
  // children it made with it. Never kill(-1) or kill(0).
  ::kill(-pid, signal);
  (void)worker.process->Signal(signal);
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

// ---------------------------------------------------------------- channels

void PoolCore::Send(Worker& worker, const wire::ToWorker& message) {
  (void)worker.writer.Append(message.SerializeAsString());
}

void PoolCore::FlushWorker(Worker& worker) {
  absl::Status flushed = worker.writer.Flush(worker.channel.get());
  if (!flushed.ok()) return;  // It died; its sentinel will tell.
  const bool want_write = !worker.writer.empty();
  if (want_write != worker.want_write) {
    Watch(epoll_.get(), worker.channel.get(), kChannel, worker.serial,
          want_write ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
    worker.want_write = want_write;
  }
}

void PoolCore::ReadChannel(Worker& worker) {
  while (true) {
    absl::StatusOr<size_t> read = worker.reader.Fill(worker.channel.get());
    // Would block, EOF, or the socket had no more for now.
    if (!read.ok() || *read == 0 || worker.reader.drained()) break;
  }
  // An arena per batch: a result of thousands of values is one allocation.
  google::protobuf::Arena arena;
  while (true) {
    absl::StatusOr<std::optional<absl::string_view>> frame = worker.reader.Next();
    auto* message = google::protobuf::Arena::CreateMessage<wire::ToParent>(&arena);
    if (!frame.ok() ||
        (frame->has_value() &&
         !message->ParseFromArray((*frame)->data(),
                                  static_cast<int>((*frame)->size())))) {
      Log(absl::StrCat("PoolWorker-", worker.index, " pid:",
                       worker.process->pid(),
                       " sent an undecodable message; killing it"));
      KillGroup(worker, SIGKILL);
      return;
    }
    if (!frame->has_value()) return;
    HandleMessage(worker, *message);
  }
}

void PoolCore::HandleMessage(Worker& worker, wire::ToParent& message) {
  switch (message.msg_case()) {
    case wire::ToParent::kUp:
      worker.up = true;
      limiter_.WorkerStarted();
      break;
    case wire::ToParent::kAccepted:
      HandleAccepted(worker, message.accepted());
      break;
    case wire::ToParent::kDone:
      HandleDone(worker, *message.mutable_done());
      break;
    case wire::ToParent::kExiting:
      worker.exit_reason = message.exiting().reason();
      break;
    default:
      break;
  }
}

// Forgets `dispatch` at `worker`, whatever became of it.
void PoolCore::DropOutstanding(Worker& worker, int64_t dispatch) {
  auto pos = std::find(worker.outstanding.begin(), worker.outstanding.end(),
                       dispatch);
  if (pos != worker.outstanding.end()) worker.outstanding.erase(pos);
}

void PoolCore::HandleAccepted(Worker& worker,
                              const wire::TaskAccepted& accepted) {
  auto it = dispatches_.find(accepted.dispatch());
  if (it == dispatches_.end() || it->second.worker != worker.serial) {
    // Not (or no longer) this worker's: nothing to start the clock for.
    DropOutstanding(worker, accepted.dispatch());
    return;
  }
  Dispatch& dispatch = it->second;
  internal::JobState& job = *dispatch.job;
  // A worker that accepts a job has started fine (billiard resets the
  // restart count on every ACK).
  limiter_.Reset();
  bool cancelled;
  {
    absl::MutexLock lock(&job.mutex);
    cancelled = job.cancelled;
  }
  if (options_.synack) {
    wire::ToWorker answer;
    answer.mutable_synack()->set_dispatch(dispatch.id);
    answer.mutable_synack()->set_accept(!cancelled);
    Send(worker, answer);
    FlushWorker(worker);
    if (cancelled) {
      DropOutstanding(worker, dispatch.id);
      dispatches_.erase(it);
      return;
    }
  }
  dispatch.accepted = true;
  dispatch.accepted_at = MonotonicNow();
  std::string().swap(dispatch.payload);
  dispatch.soft = job.options.soft_timeout.has_value()
                      ? job.options.soft_timeout
                      : options_.soft_timeout;
  dispatch.hard = job.options.timeout.has_value() ? job.options.timeout
                                                  : options_.timeout;
  if (dispatch.soft.has_value() || dispatch.hard.has_value()) {
    timed_.insert(dispatch.id);
  }
  const pid_t pid = worker.process->pid();
  {
    absl::MutexLock lock(&job.mutex);
    ++job.chunks_accepted;
    job.worker_pids.push_back(pid);
  }
  if (options_.on_timeout_set) {
    Deliver([callback = options_.on_timeout_set, id = job.id,
             soft = dispatch.soft, hard = dispatch.hard] {
      callback(id, soft, hard);
    });
  }
  if (job.options.accept_callback) {
    const absl::Time when = absl::FromUnixMicros(accepted.accepted_unix_usec());
    Deliver([callback = job.options.accept_callback, pid, when] {
      callback(pid, when);
    });
  }
}

void PoolCore::HandleDone(Worker& worker, wire::TaskDone& done) {
  auto it = dispatches_.find(done.dispatch());
  if (it == dispatches_.end() || it->second.worker != worker.serial) {
    DropOutstanding(worker, done.dispatch());
    return;
  }
  Dispatch& dispatch = it->second;
  const absl::Time now = MonotonicNow();
  if (dispatch.accepted && dispatch.item_count > 0) {
    const double per_item =
        absl::ToDoubleMicroseconds(now - dispatch.accepted_at) /
        static_cast<double>(dispatch.item_count);
    worker.average_item_usec = worker.average_item_usec < 0
                                   ? per_item
                                   : 0.8 * worker.average_item_usec + 0.2 * per_item;
  }
  DropOutstanding(worker, dispatch.id);
  if (worker.terminated_dispatch == dispatch.id) {
    // It finished before the signal ended it: a normal result.
    worker.terminated_dispatch = 0;
    worker.terminate_signal = 0;
  }
  if (!dispatch.hard_fired) {
    std::vector<absl::StatusOr<std::string>> outcomes;
    outcomes.reserve(done.values_size());
    for (std::string& value : *done.mutable_values()) {
      outcomes.emplace_back(std::move(value));
    }
    for (const wire::ItemError& item : done.errors()) {
      if (item.index() < 0 ||
          static_cast<size_t>(item.index()) >= outcomes.size()) {
        continue;
      }
      const wire::TaskError& error = item.error();
      outcomes[item.index()] =
          error.type() == "SoftTimeLimitExceeded"
              ? SoftTimeLimitExceededError()
              : TaskErrorStatus(static_cast<absl::StatusCode>(error.code()),
                                TaskErrorInfo{error.type(), error.message(),
                                              error.context()});
    }
    SetItems(*dispatch.job, dispatch.first_item, std::move(outcomes));
  }
  timed_.erase(dispatch.id);
  dispatches_.erase(it);
}

void PoolCore::HandleDeath(int64_t serial) {
  Worker* found = FindWorker(serial);
  if (found == nullptr) return;
  Worker& worker = *found;
  // Whatever it sent before dying is in the socket: take it first, so a
  // result already sent is delivered, not reported lost.
  ReadChannel(worker);
  const int exitcode = worker.process->exitcode().value_or(kUnknownExit);
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

// ---------------------------------------------------------------- jobs

void PoolCore::FailDispatch(Dispatch& dispatch, const absl::Status& status) {
  std::vector<absl::StatusOr<std::string>> outcomes(dispatch.item_count,
                                                    status);
  SetItems(*dispatch.job, dispatch.first_item, std::move(outcomes));
}

void PoolCore::SetItems(internal::JobState& job, size_t first,
                        std::vector<absl::StatusOr<std::string>> outcomes) {
  bool became_ready = false;
  std::vector<std::string> values;
  absl::Status failure;
  {
    absl::MutexLock lock(&job.mutex);
    for (size_t i = 0; i < outcomes.size(); ++i) {
      const size_t index = first + i;
      if (index >= job.items.size() || job.items[index].has_value()) continue;
      if (!outcomes[i].ok() && job.failure.ok()) job.failure = outcomes[i].status();
      job.items[index] = std::move(outcomes[i]);
      ++job.items_done;
      if (job.kind == internal::JobKind::kImapUnordered) {
        job.completed_order.push_back(index);
      }
    }
    const bool complete = job.items_done == job.items.size();
    const bool map_failed =
        job.kind == internal::JobKind::kMap && !job.failure.ok();
    if (!job.ready && (complete || map_failed)) {
      job.ready = true;
      became_ready = true;
      failure = job.failure;
      const bool wants_values =
          (job.kind == internal::JobKind::kApply && job.options.callback) ||
          (job.kind == internal::JobKind::kMap && job.options.map_callback);
      if (failure.ok() && wants_values) {
        values.reserve(job.items.size());
        for (auto& item : job.items) values.push_back(**item);
      }
    }
  }
  if (!became_ready) return;
  if (job.holds_slot) {
    job.holds_slot = false;
    --slots_in_use_;
  }
  if (options_.on_timeout_cancel) {
    Deliver([callback = options_.on_timeout_cancel, id = job.id] {
      callback(id);
    });
  }
  const CallOptions& call = job.options;
  if (!failure.ok()) {
    if (call.error_callback) {
      Deliver([callback = call.error_callback, failure] { callback(failure); });
    }
  } else if (job.kind == internal::JobKind::kApply && call.callback) {
    Deliver([callback = call.callback, value = std::move(values[0])] {
      callback(value);
    });
  } else if (job.kind == internal::JobKind::kMap && call.map_callback) {
    Deliver([callback = call.map_callback, values = std::move(values)] {
      callback(values);
    });
  }
}

absl::StatusOr<std::shared_ptr<internal::JobState>> PoolCore::Submit(
    internal::JobKind kind, absl::string_view task,
    std::vector<std::string> args, CallOptions options) {
  if (FindTask(task) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no task named '", task, "' is registered (FORKSERVER_REGISTER_TASK)"));
  }
  RETURN_IF_ERROR(ValidateCall(options));
  for (const std::string& arg : args) {
    if (arg.size() > kMaxFrameBytes - 4096) {
      return absl::InvalidArgumentError(absl::StrCat(
          "argument of ", arg.size(), " bytes exceeds the channel's cap of ",
          kMaxFrameBytes, " bytes"));
    }
  }
  auto job = std::make_shared<internal::JobState>();
  job->id = next_job_id++;
  job->kind = kind;
  job->task = std::string(task);
  job->options = std::move(options);
  job->driver = weak_from_this();
  {
    absl::MutexLock lock(&job->mutex);
    job->items.resize(args.size());
  }
  const size_t n = args.size();
  size_t chunk = 1;
  if (kind == internal::JobKind::kMap) {
    const size_t workers = static_cast<size_t>(processes());
    chunk = job->options.chunksize.has_value()
                ? static_cast<size_t>(*job->options.chunksize)
                : std::max<size_t>(1, (n + 4 * workers - 1) / (4 * workers));
  } else if (kind != internal::JobKind::kApply) {
    chunk = static_cast<size_t>(job->options.chunksize.value_or(1));
  }
  // Serialized once, here, outside the pool's lock; the arguments move in.
  std::vector<Dispatch> prepared;
  for (size_t first = 0; first < n; first += chunk) {
    Dispatch dispatch;
    dispatch.id = ++next_dispatch_;
    dispatch.job = job;
    dispatch.first_item = first;
    dispatch.item_count = std::min(chunk, n - first);
    google::protobuf::Arena arena;  // One allocation for a chunk's items.
    wire::ToWorker& message =
        *google::protobuf::Arena::CreateMessage<wire::ToWorker>(&arena);
    wire::PoolTask& task = *message.mutable_task();
    task.set_dispatch(dispatch.id);
    task.set_job(job->id);
    task.set_task(job->task);
    for (size_t i = first; i < first + dispatch.item_count; ++i) {
      task.add_args(std::move(args[i]));
    }
    message.SerializeToString(&dispatch.payload);
    prepared.push_back(std::move(dispatch));
  }
  job->chunks = static_cast<int>(prepared.size());

  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kRun) return NotRunning();
    if (job->options.wait_for_slot.value_or(options_.putlocks)) {
      if (!SlotFreeOrStopped() && OnHelperThread()) {
        // Only this thread frees slots: waiting here would wait for ever.
        return absl::FailedPreconditionError(
            "no put-lock slot is free, and a pool callback cannot wait for "
            "one (it runs on the thread that frees them); submit with "
            "CallOptions::wait_for_slot = false");
      }
      if (!options_.threads) {
        // Nobody else would free a slot while we block: drive the events.
        while (!SlotFreeOrStopped()) {
          mu_.Unlock();
          ProcessEvents(absl::Milliseconds(10));
          mu_.Lock();
        }
      } else {
        mu_.Await(absl::Condition(this, &PoolCore::SlotFreeOrStopped));
      }
      if (state_ != State::kRun) return NotRunning();
      ++slots_in_use_;
      job->holds_slot = true;
    }
    for (Dispatch& dispatch : prepared) {
      queue_.push_back(dispatch.id);
      dispatches_.emplace(dispatch.id, std::move(dispatch));
    }
    if (n == 0) SetItems(*job, 0, {});
    DispatchQueued();
  }
  RunDeliveries();
  return job;
}

absl::Status PoolCore::Cancel(internal::JobState& job) {
  absl::MutexLock lock(&mu_);
  bool any_sent = false, any_running = false;
  std::vector<int64_t> queued;
  for (auto& [id, dispatch] : dispatches_) {
    if (dispatch.job.get() != &job) continue;
    if (dispatch.accepted) any_running = true;
    else if (dispatch.worker != 0) any_sent = true;
    else queued.push_back(id);
  }
  if (job.Ready()) return absl::FailedPreconditionError("job is already done");
  if (any_running || (any_sent && !options_.synack)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job.id, any_running ? " is running" : " was sent to a worker",
        "; only a job that has not started can be cancelled (with synack, "
        "also one that was sent but not started)"));
  }
  {
    absl::MutexLock job_lock(&job.mutex);
    job.cancelled = true;
  }
  for (int64_t id : queued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), id));
    FailDispatch(dispatches_.at(id), CancelledJobError(job.id));
    dispatches_.erase(id);
  }
  if (any_sent) {
    // synack: the worker's acknowledgement will be answered with a NACK.
    for (auto& [id, dispatch] : dispatches_) {
      if (dispatch.job.get() == &job) FailDispatch(dispatch, CancelledJobError(job.id));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- dispatch

size_t PoolCore::Window(const Worker& worker) const {
  if (options_.synack) return 1;
  if (worker.average_item_usec < 0) return 2;  // Not measured yet.
  const double extra =
      kPrefetchBudgetUsec / std::max(worker.average_item_usec, 1.0);
  return 1 + static_cast<size_t>(std::min<double>(extra, kMaxWindow));
}

void PoolCore::DispatchQueued() {
  if (queue_.empty()) return;
  std::vector<Worker*> candidates;
  for (auto& [serial, worker] : workers_) {
    if (!worker->retiring && !worker->exited) candidates.push_back(worker.get());
  }
  std::vector<Worker*> touched;
  while (!queue_.empty()) {
    Worker* best = nullptr;
    for (Worker* worker : candidates) {
      if (worker->outstanding.size() >= Window(*worker)) continue;
      if (best == nullptr || worker->outstanding.size() < best->outstanding.size()) {
        best = worker;
      }
    }
    if (best == nullptr) break;
    const int64_t id = queue_.front();
    queue_.pop_front();
    Dispatch& dispatch = dispatches_.at(id);
    (void)best->writer.Append(dispatch.payload);
    dispatch.worker = best->serial;
    best->outstanding.push_back(id);
    if (std::find(touched.begin(), touched.end(), best) == touched.end()) {
      touched.push_back(best);
    }
  }
  for (Worker* worker : touched) FlushWorker(*worker);
}

void PoolCore::RetireIdleWhenClosing() {
  if (state_ != State::kClose || !queue_.empty()) return;
  for (auto& [serial, worker] : workers_) {
    if (worker->retiring || !worker->outstanding.empty()) continue;
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(*worker, message);
    FlushWorker(*worker);
    worker->retiring = true;
  }
}

// ---------------------------------------------------------------- timers

void PoolCore::HandleTimers() {
  const absl::Time now = MonotonicNow();
  std::vector<int64_t> expired;
  for (int64_t id : timed_) {
    auto it = dispatches_.find(id);
    if (it == dispatches_.end()) {
      expired.push_back(id);
      continue;
    }
    Dispatch& dispatch = it->second;
    if (dispatch.lost) {
      if (now >= dispatch.lost_deadline) {
        FailDispatch(dispatch,
                     WorkerLostError(dispatch.lost_exitcode, dispatch.job->id));
        expired.push_back(id);
      }
      continue;
    }
    Worker* worker = FindWorker(dispatch.worker);
    if (worker == nullptr || !dispatch.accepted) continue;
    const CallOptions& call = dispatch.job->options;
    if (dispatch.soft.has_value() && !dispatch.soft_fired &&
        now >= dispatch.accepted_at + *dispatch.soft) {
      dispatch.soft_fired = true;
      if (call.timeout_callback) {
        Deliver([callback = call.timeout_callback, limit = *dispatch.soft] {
          callback(true, limit);
        });
      }
      SendSoftLimit(*worker, id);
    }
    if (dispatch.hard.has_value() && !dispatch.hard_fired &&
        now >= dispatch.accepted_at + *dispatch.hard) {
      dispatch.hard_fired = true;
      FailDispatch(dispatch,
                   TimeLimitExceededError(*dispatch.hard, dispatch.job->id));
      if (call.timeout_callback) {
        Deliver([callback = call.timeout_callback, limit = *dispatch.hard] {
          callback(false, limit);
        });
      }
      // TERM now, KILL after the grace, to the whole process group; the
      // worker is replaced when reaped.
      worker->controlled = true;
      worker->retiring = true;
      KillGroup(*worker, SIGTERM);
      worker->kill_at = now + options_.hard_kill_grace;
      // Jobs sent to it but not started stay with it until it is gone
      // (then they are requeued): it may still start them before it dies,
      // and a job must not run twice.
    }
  }
  for (int64_t id : expired) {
    timed_.erase(id);
    auto it = dispatches_.find(id);
    if (it != dispatches_.end() && it->second.lost) dispatches_.erase(it);
  }
  for (auto& [serial, worker] : workers_) {
    if (now >= worker->kill_at) {
      KillGroup(*worker, SIGKILL);
      worker->kill_at = absl::InfiniteFuture();
    }
  }
}

void PoolCore::ArmTimer() {
  absl::Time next = next_maintenance_;
  for (int64_t id : timed_) {
    auto it = dispatches_.find(id);
    if (it == dispatches_.end()) continue;
    const Dispatch& dispatch = it->second;
    if (dispatch.lost) {
      next = std::min(next, dispatch.lost_deadline);
      continue;
    }
    if (!dispatch.accepted) continue;
    if (dispatch.soft.has_value() && !dispatch.soft_fired) {
      next = std::min(next, dispatch.accepted_at + *dispatch.soft);
    }
    if (dispatch.hard.has_value() && !dispatch.hard_fired) {
      next = std::min(next, dispatch.accepted_at + *dispatch.hard);
    }
  }
  for (const auto& [serial, worker] : workers_) {
    next = std::min(next, worker->kill_at);
  }
  // A system call per event batch adds up: re-arm only on a new deadline.
  // (A passed deadline fires at once, and its handling moves it on.)
  if (next == armed_ && next > MonotonicNow()) return;
  armed_ = next;
  itimerspec spec{};
  if (next != absl::InfiniteFuture()) {
    // A zero it_value would disarm: fire in at least a nanosecond.
    const absl::Duration left =
        std::max(next - MonotonicNow(), absl::Nanoseconds(1));
    spec.it_value = absl::ToTimespec(left);
  }
  ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

// ---------------------------------------------------------------- events

void PoolCore::ProcessEvents(absl::Duration timeout) {
  epoll_event events[64];
  const int millis =
      timeout == absl::InfiniteDuration()
          ? -1
          : static_cast<int>(std::min<int64_t>(
                absl::ToInt64Milliseconds(timeout + absl::Microseconds(999)),
                1 << 30));
  const int ready = ::epoll_wait(epoll_.get(), events, 64, millis);
  {
    absl::MutexLock lock(&mu_);
    if (joined_) return;
    std::vector<int64_t> deaths;
    for (int i = 0; i < ready; ++i) {
      const uint64_t tag = events[i].data.u64 >> kTagShift;
      const int64_t serial = static_cast<int64_t>(events[i].data.u64 & kSerialMask);
      if (tag == kWake) {
        uint64_t count;
        (void)!::read(wake_.get(), &count, sizeof(count));
      } else if (tag == kTimer) {
        uint64_t expirations;
        (void)!::read(timer_.get(), &expirations, sizeof(expirations));
        armed_ = absl::InfiniteFuture();  // One-shot: it is disarmed now.
      } else if (Worker* worker = FindWorker(serial)) {
        if (tag == kChannel) {
          if (events[i].events & EPOLLOUT) FlushWorker(*worker);
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            ReadChannel(*worker);
          }
        } else if (!worker->exited) {
          worker->exited = true;
          deaths.push_back(serial);
        }
      }
    }
    for (int64_t serial : deaths) HandleDeath(serial);
    HandleTimers();
    Maintain();
    DispatchQueued();
    RetireIdleWhenClosing();
    ArmTimer();
    // Another thread (MaintainPool, a waiter in event-loop mode) may have
    // handled the last event: make sure the helper thread looks again and
    // sees it has nothing left to do.
    if (state_ != State::kRun && Finished() && options_.threads) Wake();
  }
  RunDeliveries();
}

// ---------------------------------------------------------------- control

absl::Status PoolCore::TerminateJob(pid_t pid, int signal) {
  absl::MutexLock lock(&mu_);
  for (auto& [serial, worker] : workers_) {
    if (worker->process->pid() != pid) continue;
    worker->terminate_signal = signal;
    // Its death, whenever it comes, is ours: no error log, not counted.
    worker->controlled = true;
    for (int64_t id : worker->outstanding) {
      auto it = dispatches_.find(id);
      if (it != dispatches_.end() && it->second.accepted) {
        worker->terminated_dispatch = id;
        break;
      }
    }
    return worker->process->Signal(signal);
  }
  return absl::NotFoundError(
      absl::StrCat("no worker of this pool has pid ", pid));
}

absl::Status PoolCore::Grow(int n) {
  if (n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Grow(", n, "): n must be at least 1"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kRun) return NotRunning();
    processes_ += n;
    Maintain();
    DispatchQueued();
    ArmTimer();  // Maintain may have scheduled a retry.
  }
  RunDeliveries();
  return absl::OkStatus();
}

absl::Status PoolCore::Shrink(int n) {
  if (n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Shrink(", n, "): n must be at least 1"));
  }
  absl::MutexLock lock(&mu_);
  if (state_ != State::kRun) return NotRunning();
  if (processes_ - n < 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Can't shrink pool of ", processes_, " processes by ", n,
        ": at least one must remain"));
  }
  std::vector<Worker*> idle;
  for (auto& [serial, worker] : workers_) {
    if (!worker->retiring && !worker->exited && worker->outstanding.empty()) {
      idle.push_back(worker.get());
    }
  }
  // The highest slots go first, so the others stay 0..processes-1.
  std::sort(idle.begin(), idle.end(), [](const Worker* a, const Worker* b) {
    return a->index > b->index;
  });
  // Check first, act after: never retire some and then fail (billiard P11).
  if (idle.size() < static_cast<size_t>(n)) {
    return absl::FailedPreconditionError(
        "Can't shrink pool. All processes busy!");
  }
  for (int i = 0; i < n; ++i) {
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(*idle[i], message);
    FlushWorker(*idle[i]);
    idle[i]->retiring = true;
    idle[i]->controlled = true;
  }
  processes_ -= n;
  return absl::OkStatus();
}

absl::Status PoolCore::Restart() {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kRun) return NotRunning();
  for (auto& [serial, worker] : workers_) {
    if (worker->retiring) continue;
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(*worker, message);
    FlushWorker(*worker);
    worker->retiring = true;
  }
  return absl::OkStatus();
}

bool PoolCore::SlotFreeOrStopped() const {
  return slots_in_use_ < slots_ || state_ != State::kRun;
}

bool PoolCore::StartSettled() const {
  if (initial_died_) return true;
  for (const auto& [serial, worker] : workers_) {
    if (worker->initial && !worker->up) return false;
  }
  return true;
}

bool PoolCore::DidStartOk(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (options_.threads) {
        mu_.AwaitWithDeadline(absl::Condition(this, &PoolCore::StartSettled),
                              deadline);
      }
      if (StartSettled()) return !initial_died_;
      if (absl::Now() >= deadline) return false;
    }
    ProcessEvents(std::min(deadline - absl::Now(), absl::Milliseconds(10)));
  }
}

void PoolCore::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kRun) state_ = State::kClose;
    RetireIdleWhenClosing();
  }
  Wake();
}

absl::Status PoolCore::Terminate() {
  {
    absl::MutexLock lock(&mu_);
    if (joined_) return absl::OkStatus();
    if (state_ != State::kTerminate) {
      state_ = State::kTerminate;
      for (int64_t id : queue_) {
        auto it = dispatches_.find(id);
        if (it == dispatches_.end()) continue;
        FailDispatch(it->second, CancelledJobError(it->second.job->id));
        dispatches_.erase(it);
      }
      queue_.clear();
      // Jobs whose worker is already gone: no point waiting for the timer.
      std::vector<int64_t> lost;
      for (auto& [id, dispatch] : dispatches_) {
        if (dispatch.lost) {
          FailDispatch(dispatch, WorkerLostError(dispatch.lost_exitcode,
                                                 dispatch.job->id));
          lost.push_back(id);
        }
      }
      for (int64_t id : lost) {
        timed_.erase(id);
        dispatches_.erase(id);
      }
      const absl::Time now = MonotonicNow();
      for (auto& [serial, worker] : workers_) {
        worker->controlled = true;
        KillGroup(*worker, SIGTERM);
        worker->kill_at = now + options_.hard_kill_grace;
      }
      ArmTimer();
    }
  }
  Wake();
  RunDeliveries();
  return Join();
}

absl::Status PoolCore::Join() {
  if (loop_.joinable() && OnHelperThread()) {
    return absl::FailedPreconditionError(
        "Join() from a pool callback would wait for itself");
  }
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kRun) {
      return absl::FailedPreconditionError(
          "pool is still running; call Close() or Terminate() first");
    }
    if (joined_) return absl::OkStatus();
  }
  if (options_.threads) {
    if (loop_.joinable()) loop_.join();
  } else {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (Finished()) break;
      }
      ProcessEvents(absl::Milliseconds(50));
    }
  }
  RunDeliveries();
  absl::MutexLock lock(&mu_);
  joined_ = true;
  // Nothing may linger after join (billiard#282 leaked four pipes).
  epoll_.reset();
  wake_.reset();
  timer_.reset();
  return absl::OkStatus();
}

absl::Status PoolCore::MaintainPool() {
  ProcessEvents(absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  return failure_;
}

std::vector<std::pair<int, std::function<void()>>> PoolCore::Readers() {
  std::weak_ptr<PoolCore> weak = weak_from_this();
  return {{epoll_.get(), [weak] {
             if (auto core = weak.lock()) core->ProcessEvents(absl::ZeroDuration());
           }}};
}

std::vector<WorkerInfo> PoolCore::Workers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerInfo> infos;
  for (const auto& [serial, worker] : workers_) {
    infos.push_back({worker->index, worker->process->pid(), std::nullopt, ""});
  }
  std::sort(infos.begin(), infos.end(),
            [](const WorkerInfo& a, const WorkerInfo& b) { return a.index < b.index; });
  return infos;
}

int PoolCore::processes() const {
  absl::MutexLock lock(&mu_);
  return processes_;
}

}  // namespace forkserver
