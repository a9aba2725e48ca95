#include "lib/process.h"

#include <atomic>
#include <csignal>
#include <cstdlib>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/process_launch.h"

namespace forkserver {

struct Process::State {
  std::string entry;
  std::string arg;
  ProcessOptions options;
  StartMethod method = StartMethod::kForkServer;
  std::unique_ptr<ChildHandle> child;
  std::optional<ExitInfo> exit;

  bool started() const { return child != nullptr; }

  // Collects the exit status if it is known by `deadline`.
  absl::Status Collect(absl::Time deadline) {
    if (exit.has_value()) return absl::OkStatus();
    absl::StatusOr<std::optional<ExitInfo>> result = child->WaitForExit(deadline);
    if (!result.ok()) return result.status();
    exit = *result;
    return absl::OkStatus();
  }

  absl::Status NotStarted(absl::string_view what) const {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot ", what, " process '", options.name,
        "': it has not been started"));
  }
};

namespace {

std::atomic<int> process_counter{0};

// Daemon processes still running, terminated at normal exit.
ABSL_CONST_INIT absl::Mutex daemons_mutex(absl::kConstInit);
absl::flat_hash_set<Process*>& Daemons()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(daemons_mutex) {
  static auto* daemons = new absl::flat_hash_set<Process*>;
  return *daemons;
}

void TerminateDaemonsAtExit() {
  std::vector<Process*> daemons;
  {
    absl::MutexLock lock(&daemons_mutex);
    daemons.assign(Daemons().begin(), Daemons().end());
  }
  for (Process* process : daemons) (void)process->Terminate();
  for (Process* process : daemons) {
    if (!process->Join(absl::Seconds(1)).ok()) {
      (void)process->Kill();
      (void)process->Join(absl::Seconds(1));
    }
  }
}

void RegisterDaemon(Process* process) {
  static const bool registered = [] {
    std::atexit(TerminateDaemonsAtExit);
    return true;
  }();
  (void)registered;
  absl::MutexLock lock(&daemons_mutex);
  Daemons().insert(process);
}

void UnregisterDaemon(Process* process) {
  absl::MutexLock lock(&daemons_mutex);
  Daemons().erase(process);
}

}  // namespace

Process::Process(std::string entry, std::string arg, ProcessOptions options)
    : state_(std::make_unique<State>()) {
  state_->entry = std::move(entry);
  state_->arg = std::move(arg);
  state_->options = std::move(options);
  if (state_->options.name.empty()) {
    state_->options.name = absl::StrCat("Process-", ++process_counter);
  }
}

Process::Process(Process&& other) noexcept : state_(std::move(other.state_)) {
  if (state_ && state_->options.daemon && state_->started()) {
    UnregisterDaemon(&other);
    RegisterDaemon(this);
  }
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process discarded(std::move(*this));  // Joins or terminates ours.
    state_ = std::move(other.state_);
    if (state_ && state_->options.daemon && state_->started()) {
      UnregisterDaemon(&other);
      RegisterDaemon(this);
    }
  }
  return *this;
}

Process::~Process() {
  if (state_ == nullptr || !state_->started()) return;
  if (state_->options.daemon) {
    UnregisterDaemon(this);
    if (IsAlive()) {
      (void)Terminate();
      if (!Join(absl::Seconds(1)).ok()) {
        (void)Kill();
        (void)Join(absl::Seconds(1));
      }
    }
    return;
  }
  (void)Join();
}

absl::Status Process::Start() {
  State& s = *state_;
  if (s.started()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "process '", s.options.name, "' has already been started"));
  }
  s.method = s.options.start_method.value_or(GetStartMethod());
  LaunchRequest request;
  request.entry = s.entry;
  request.arg = s.arg;
  request.name = s.options.name;
  request.daemon = s.options.daemon;
  request.fds = s.options.fds;
  absl::StatusOr<std::unique_ptr<ChildHandle>> child =
      LaunchChild(s.method, request);
  if (!child.ok()) return child.status();
  s.child = std::move(*child);
  if (s.options.daemon) RegisterDaemon(this);
  return absl::OkStatus();
}

absl::Status Process::Join(absl::Duration timeout) {
  State& s = *state_;
  if (!s.started()) return s.NotStarted("join");
  const absl::Time deadline = timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + timeout;
  absl::Status collected = s.Collect(deadline);
  if (!collected.ok()) return collected;
  if (!s.exit.has_value()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "process '", s.options.name, "' (pid ", s.child->pid(),
        ") is still running after ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

absl::Status Process::Signal(int sig) {
  State& s = *state_;
  if (!s.started()) return s.NotStarted("signal");
  if (s.exit.has_value()) return absl::OkStatus();
  return s.child->Signal(sig);
}

absl::Status Process::Terminate() { return Signal(SIGTERM); }
absl::Status Process::Kill() { return Signal(SIGKILL); }

bool Process::IsAlive() const {
  State& s = *state_;
  if (!s.started() || s.exit.has_value()) return false;
  if (!s.child->Terminated()) return true;
  // It has ended; make exitcode() agree by collecting the status, which
  // the fork server sends right after reaping.
  (void)s.Collect(absl::Now() + absl::Seconds(1));
  return false;
}

std::optional<int> Process::exitcode() const {
  State& s = *state_;
  if (!s.started()) return std::nullopt;
  if (!s.exit.has_value() && s.child->Terminated()) {
    (void)s.Collect(absl::Now() + absl::Seconds(1));
  }
  if (!s.exit.has_value()) return std::nullopt;
  return s.exit->exitcode;
}

std::optional<ResourceUsage> Process::resource_usage() const {
  if (exitcode() == std::nullopt) return std::nullopt;
  return state_->exit->usage;
}

pid_t Process::pid() const {
  return state_->started() ? state_->child->pid() : 0;
}

int Process::sentinel() const {
  return state_->started() ? state_->child->pidfd() : -1;
}

const std::string& Process::name() const { return state_->options.name; }
bool Process::daemon() const { return state_->options.daemon; }
StartMethod Process::start_method() const {
  if (state_->started()) return state_->method;
  return state_->options.start_method.value_or(GetStartMethod());
}

}  // namespace forkserver
