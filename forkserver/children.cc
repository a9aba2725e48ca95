#include "forkserver/children.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "forkserver/child/spawner.h"
#include "forkserver/fd_budget.h"
#include "forkserver/memfd_args.h"
#include "forkserver/server_log.h"
#include "lib/base/status_macros.h"
#include "lib/registry/entry_runner.h"
#include "lib/registry/registry.h"

namespace forkserver {
namespace server_internal {
namespace {

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(
      ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// The entry an entry-mode request names (nullptr for exec mode). Looked up
// before forking, so an unknown name is an error reply, not a child that
// dies at once.
absl::StatusOr<EntryFunction> EntryOf(const wire::SpawnRequest& request) {
  if (request.kind() != wire::SPAWN_KIND_ENTRY) return EntryFunction{nullptr};
  EntryFunction entry = FindEntry(request.entry());
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no entry point named '", request.entry(),
        "' is registered in this binary (FORKSERVER_ENTRY)"));
  }
  return entry;
}

// What every child gets, whatever its kind: its own session, death with
// the server unless it is to survive it, its name and its descriptors.
ChildSetupPlan BasePlan(const wire::SpawnRequest& request,
                        const std::vector<UniqueFd>& fds) {
  ChildSetupPlan plan;
  plan.new_session = true;
  plan.restore_nofile_soft = FdLimitForChildren();
  if (!request.survive_server()) {
    plan.parent_death_signal = SIGKILL;
    plan.expected_parent = ::getpid();
  }
  const std::string& name = request.name().empty() ? request.entry()
                                                   : request.name();
  std::strncpy(plan.name, name.c_str(), sizeof(plan.name) - 1);
  plan.fd_count = request.child_fds_size();
  for (int i = 0; i < plan.fd_count; ++i) {
    plan.source_fds[i] = fds[i].get();
    plan.target_fds[i] = request.child_fds(i);
  }
  return plan;
}

// Exec mode's NULL-terminated argv/envp. They point into the request,
// which outlives fork(); these vectors must too.
struct ExecArrays {
  std::vector<char*> argv;
  std::vector<char*> envp;
};

// `strings` holds the argv and env: the request's own, or those read from
// its memfd (which must outlive fork() too).
void AddExec(const wire::ExecSpec& exec, const wire::ExecStrings& strings,
             ExecArrays& arrays, ChildSetupPlan& plan) {
  for (const std::string& arg : strings.argv()) {
    arrays.argv.push_back(const_cast<char*>(arg.c_str()));
  }
  arrays.argv.push_back(nullptr);
  for (const std::string& entry_text : strings.env()) {
    arrays.envp.push_back(const_cast<char*>(entry_text.c_str()));
  }
  arrays.envp.push_back(nullptr);
  plan.exec_path = exec.path().c_str();
  plan.exec_argv = arrays.argv.data();
  plan.exec_envp = arrays.envp.data();
  if (!exec.cwd().empty()) plan.cwd = exec.cwd().c_str();
}

// install_fds copies the descriptors above every number in use with
// F_DUPFD_CLOEXEC, which fails with EINVAL when that is past RLIMIT_NOFILE
// and with EMFILE when the table is full: the child ran out of descriptor
// room, which is RESOURCE_EXHAUSTED, not an internal error.
absl::Status OutOfFdsOr(const ChildSetupFailure& failure,
                        const absl::Status& result) {
  const int error = failure.error;
  if (result.ok() ||
      static_cast<ChildStep>(failure.step) != ChildStep::kInstallFds ||
      (error != EINVAL && error != EMFILE && error != ENFILE)) {
    return result;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "child setup step 'install_fds' failed: the child's descriptor table "
      "is full (RLIMIT_NOFILE ", FdLimit(), "; ", std::strerror(error), ")"));
}

// Decision 1 of design.md: fork only while single-threaded.
absl::Status CheckSingleThreaded() {
  ASSIGN_OR_RETURN(int threads, CountThreads());
  if (threads != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fork server has ", threads,
        " threads (did a preload start one?); refusing to fork"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<pid_t> ChildTable::Spawn(const wire::SpawnRequest& request,
                                        std::vector<UniqueFd>& fds) {
  ASSIGN_OR_RETURN(const EntryFunction entry, EntryOf(request));
  if (WarmPool::Serves(request)) {
    if (std::optional<TakenWarmChild> warm = warm_.Take(request, fds)) {
      ++spawned_total_;
      ForkedChild taken;
      taken.pid = warm->pid;
      taken.pidfd = std::move(warm->pidfd);
      taken.report = std::move(warm->report);
      Record(taken, request);
      return taken.pid;
    }
  }
  MappedArgument memfd_argument;
  absl::string_view argument = request.arg();
  if (request.arg_in_memfd()) {
    ASSIGN_OR_RETURN(memfd_argument, MappedArgument::Map(fds.back().get()));
    argument = memfd_argument.view();
  }
  ChildSetupPlan plan = BasePlan(request, fds);
  ExecArrays exec_arrays;
  wire::ExecStrings exec_strings;
  if (request.kind() == wire::SPAWN_KIND_EXEC) {
    const wire::ExecSpec& exec = request.exec();
    if (exec.strings_in_memfd()) {
      ASSIGN_OR_RETURN(exec_strings, ReadExecStrings(fds.back().get()));
    } else {
      *exec_strings.mutable_argv() = exec.argv();
      *exec_strings.mutable_env() = exec.env();
    }
    AddExec(exec, exec_strings, exec_arrays, plan);
  }
  RETURN_IF_ERROR(CheckSingleThreaded());

  if (request.kind() == wire::SPAWN_KIND_EXEC) {
    // A program: no copy of our page tables (clone with CLONE_VM and
    // CLONE_VFORK, forkserver/child/vfork_exec.cc); its setup verdict is
    // known when this returns. Sandboxed programs never come here: their
    // template forks them (forkserver/templates.h).
    ASSIGN_OR_RETURN(ForkedChild forked, VforkExecChild(plan));
    ++spawned_total_;
    Record(forked, request);
    return forked.pid;
  }
  // Never a blocking fflush: stderr may be a pipe nobody reads.
  FlushStandardStreamsWithoutBlocking();
  ASSIGN_OR_RETURN(ForkedChild forked, ForkChild(plan));
  if (forked.pid == 0) {
    // The child, set up. Only entry mode gets here (exec mode never
    // returns from child setup). Single-threaded: ordinary C++ is fine.
    DiscardInheritedStdioBuffers();
    RunEntryAndExit(entry, argument, request.entry());
  }
  ++spawned_total_;
  Record(forked, request);
  return forked.pid;
}

void ChildTable::RefillWarm() {
  absl::Status can_fork = CheckSingleThreaded();
  // Never a blocking fflush: stderr may be a pipe nobody reads.
  if (can_fork.ok()) FlushStandardStreamsWithoutBlocking();
  warm_.RefillOne(can_fork);
}

void ChildTable::Record(ForkedChild& forked,
                        const wire::SpawnRequest& request) {
  Child& child = children_[forked.pid];
  child.pidfd = std::move(forked.pidfd);
  child.kill_on_disconnect = request.kill_on_disconnect();
  child.survive_server = request.survive_server();
  if (forked.report_complete) {
    // Nothing to wait for: ReadSetupReport judges these bytes at once.
    child.report_bytes = std::move(forked.report_bytes);
    child.report_complete = true;
    return;
  }
  // Non-blocking: the loop reads reports as they come and must not wait
  // for a child that is still setting up.
  if (::fcntl(forked.report.get(), F_SETFL, O_NONBLOCK) != 0) {
    Log(absl::StrCat("fcntl(O_NONBLOCK) on a report pipe: ",
                     std::strerror(errno)));
  }
  child.report = std::move(forked.report);
  pending_reports_[child.report.get()] = forked.pid;
  events_.Watch(child.report.get(), EventSource::kReport);
}

void ChildTable::Adopt(pid_t pid, UniqueFd pidfd, bool kill_on_disconnect) {
  Child& child = children_[pid];
  child.pidfd = std::move(pidfd);
  child.kill_on_disconnect = kill_on_disconnect;
  ++spawned_total_;
}

Child* ChildTable::Find(pid_t pid) {
  auto it = children_.find(pid);
  return it == children_.end() ? nullptr : &it->second;
}

std::optional<pid_t> ChildTable::PendingReport(int report_fd) const {
  auto it = pending_reports_.find(report_fd);
  if (it == pending_reports_.end()) return std::nullopt;
  return it->second;
}

std::optional<SetupReport> ChildTable::ReadSetupReport(pid_t pid) {
  Child& child = children_.at(pid);
  if (child.report_complete) {
    // A program launched by VforkExecChild: the verdict came with it.
    child.report_complete = false;
    SetupReport verdict;
    verdict.result = ChildSetupResult(child.report_bytes.data(),
                                      child.report_bytes.size(),
                                      &verdict.failure);
    verdict.result = OutOfFdsOr(verdict.failure, verdict.result);
    return verdict;
  }
  if (!child.report) return std::nullopt;  // Judged already.
  const int report = child.report.get();
  // A failure record is 8 bytes, written at once; success is EOF with
  // nothing. Keep what arrived across calls, and stop at a whole record
  // (the child may not have exited yet, so EOF may still be to come).
  while (child.report_bytes.size() < sizeof(ChildSetupFailure)) {
    char buffer[sizeof(ChildSetupFailure)];
    ssize_t n = ::read(report, buffer,
                       sizeof(buffer) - child.report_bytes.size());
    if (n > 0) {
      child.report_bytes.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return std::nullopt;  // Not complete yet.
    break;  // EOF (or an error: judge what arrived so far).
  }
  SetupReport verdict;
  verdict.result = ChildSetupResult(child.report_bytes.data(),
                                    child.report_bytes.size(),
                                    &verdict.failure);
  verdict.result = OutOfFdsOr(verdict.failure, verdict.result);
  pending_reports_.erase(report);
  events_.Unwatch(report);
  child.report.reset();
  return verdict;
}

void ChildTable::Disown(pid_t pid, int fd) {
  if (pid == 0) return;
  auto child = children_.find(pid);
  if (child == children_.end() || child->second.connection != fd) return;
  Child& orphan = child->second;
  orphan.connection = -1;
  const bool unknown = !orphan.announced && !orphan.survive_server;
  // Daemon semantics: the owner is gone, so is its child; and a child its
  // client never heard of must not run on unknown.
  if (orphan.kill_on_disconnect || unknown) {
    PidfdSendSignal(orphan.pidfd.get(), SIGKILL);
  }
  if (unknown) {
    Log(absl::StrCat("killed child ", pid, ": its client left before it got "
                     "the child's pid"));
  }
}

absl::Status CheckSignalNumber(int sig) {
  if (sig < 1 || sig > 64) {
    return absl::InvalidArgumentError(absl::StrCat("signal ", sig, " is not in 1..64"));
  }
  return absl::OkStatus();
}

absl::Status ChildTable::SignalGroup(pid_t pid, int sig) {
  RETURN_IF_ERROR(CheckSignalNumber(sig));
  auto child = children_.find(pid);
  if (pid <= 1 || child == children_.end()) return absl::OkStatus();
  child->second.kill_group_on_exit = true;
  ::kill(-pid, sig);  // ESRCH: the group is empty; nothing to do.
  return absl::OkStatus();
}

namespace {

// Each child leads its own session and process group (new_session), and
// is unreaped while in the table, so its pid still names its group:
// signalling the group by that number cannot reach anyone else's. What a
// child started in its group goes with it; only the child itself through
// its pidfd, as the group may be gone already (ESRCH).
void SignalChildAndGroup(pid_t pid, const Child& child, int sig) {
  PidfdSendSignal(child.pidfd.get(), sig);
  ::kill(-pid, sig);
}

}  // namespace

void ChildTable::TerminateAll() {
  warm_.Retire();
  for (auto& [pid, child] : children_) {
    if (!child.survive_server) SignalChildAndGroup(pid, child, SIGTERM);
  }
}

bool ChildTable::OnlySurvivorsLeft() const {
  if (!warm_.empty()) return false;
  for (const auto& [pid, child] : children_) {
    if (!child.survive_server) return false;
  }
  return true;
}

void ChildTable::KillRemaining() {
  warm_.KillAll();
  for (auto& [pid, child] : children_) {
    if (!child.survive_server) SignalChildAndGroup(pid, child, SIGKILL);
  }
}

std::vector<pid_t> ChildTable::NonSurvivors() const {
  std::vector<pid_t> pids = warm_.Pids();
  for (const auto& [pid, child] : children_) {
    if (!child.survive_server) pids.push_back(pid);
  }
  return pids;
}

}  // namespace server_internal
}  // namespace forkserver
