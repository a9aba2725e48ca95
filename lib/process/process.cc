#include "lib/process/process.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/base/wait_readable.h"
#include "lib/process/process_launch.h"

namespace forkserver {

struct Process::State {
  std::string entry;
  std::string arg;
  ProcessOptions options;
  StartMethod method = StartMethod::kForkServer;
  // Shared only with the daemon registry's exit hook, which just signals
  // and polls the pidfd.
  std::shared_ptr<ChildHandle> child;
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

// Ending a worker that has to go: SIGTERM, this long, then SIGKILL and
// this long more for its status.
constexpr absl::Duration kTerminateGrace = absl::Seconds(1);
constexpr absl::Duration kKillWait = absl::Seconds(5);

// Daemon processes still running, ended at normal exit. The registry holds
// a share of each one's ChildHandle, never a Process*: the Process may be
// destroyed (by the Pool's thread, say) while the exit hook works, but
// the handle, and with it the pidfd, stays valid until the hook is done.
struct DaemonRegistry {
  absl::Mutex mutex;
  // The process that registered them: a forked child that runs exit()
  // does not end its parent's daemons.
  pid_t owner ABSL_GUARDED_BY(mutex) = 0;
  absl::flat_hash_map<const ChildHandle*, std::shared_ptr<ChildHandle>>
      daemons ABSL_GUARDED_BY(mutex);
};

DaemonRegistry& Daemons() {
  static auto* registry = new DaemonRegistry;  // Lives for the process.
  return *registry;
}

// SIGTERM, up to `grace` for it to end, then SIGKILL and up to `grace`
// more. Only signals and waits on the pidfd: the status stays for whoever
// joins (no reaping here, so nothing races another thread's Join).
void EndThroughPidfd(const std::vector<std::shared_ptr<ChildHandle>>& children,
                     absl::Duration grace) {
  for (const auto& child : children) (void)child->Signal(SIGTERM);
  absl::Time deadline = absl::Now() + grace;
  for (const auto& child : children) {
    if (!WaitReadable(child->pidfd(), deadline)) (void)child->Signal(SIGKILL);
  }
  deadline = absl::Now() + grace;
  for (const auto& child : children) WaitReadable(child->pidfd(), deadline);
}

void TerminateDaemonsAtExit() {
  std::vector<std::shared_ptr<ChildHandle>> daemons;
  {
    DaemonRegistry& registry = Daemons();
    absl::MutexLock lock(&registry.mutex);
    if (registry.owner != ::getpid()) return;
    for (const auto& [key, child] : registry.daemons) daemons.push_back(child);
  }
  EndThroughPidfd(daemons, kTerminateGrace);
}

void RegisterDaemon(const std::shared_ptr<ChildHandle>& child) {
  static const bool registered = [] {
    std::atexit(TerminateDaemonsAtExit);
    return true;
  }();
  (void)registered;
  DaemonRegistry& registry = Daemons();
  absl::MutexLock lock(&registry.mutex);
  if (registry.owner != ::getpid()) {
    registry.daemons.clear();  // Inherited through fork: the parent's.
    registry.owner = ::getpid();
  }
  registry.daemons[child.get()] = child;
}

void UnregisterDaemon(const ChildHandle* child) {
  DaemonRegistry& registry = Daemons();
  absl::MutexLock lock(&registry.mutex);
  registry.daemons.erase(child);
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

// The daemon registry is keyed by the child handle, which moves with the
// state: nothing to re-register.
Process::Process(Process&& other) noexcept = default;

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Process discarded(std::move(*this));  // Joins or terminates ours.
    state_ = std::move(other.state_);
  }
  return *this;
}

Process::~Process() {
  if (state_ == nullptr || !state_->started()) return;
  if (state_->options.daemon) {
    UnregisterDaemon(state_->child.get());
    if (IsAlive()) EndRunning();
    return;
  }
  const absl::Duration bound = state_->options.destroy_join_timeout;
  if (!absl::IsDeadlineExceeded(Join(bound))) return;
  std::fprintf(stderr,
               "forkserver: process '%s' (pid %d) still ran %s after its "
               "Process was destroyed; terminating it "
               "(ProcessOptions::destroy_join_timeout)\n",
               state_->options.name.c_str(), static_cast<int>(pid()),
               absl::FormatDuration(bound).c_str());
  EndRunning();
}

void Process::EndRunning() {
  (void)Terminate();
  if (Join(kTerminateGrace).ok()) return;
  (void)Kill();
  (void)Join(kKillWait);
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
  if (s.options.sandbox.has_value()) request.sandbox = &*s.options.sandbox;
  absl::StatusOr<std::unique_ptr<ChildHandle>> child =
      LaunchChild(s.method, request);
  if (!child.ok()) return child.status();
  s.child = std::move(*child);
  if (s.options.daemon) RegisterDaemon(s.child);
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

absl::Status Process::SignalGroup(int sig) {
  State& s = *state_;
  if (!s.started()) return s.NotStarted("signal");
  if (s.exit.has_value()) return absl::OkStatus();  // Reaped: too late.
  return s.child->SignalGroup(sig);
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

std::optional<wire::ExecutionStats> Process::execution_stats() const {
  if (exitcode() == std::nullopt) return std::nullopt;
  return state_->exit->stats;
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
