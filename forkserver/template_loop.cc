#include "forkserver/template_loop.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "forkserver/child/sandbox/steps.h"
#include "forkserver/child/spawner.h"
#include "forkserver/client_fd_closer.h"
#include "forkserver/child/sandbox/template_child.h"
#include "forkserver/memfd_args.h"
#include "forkserver/server_log.h"
#include "lib/ipc/seqpacket.h"
#include "lib/base/monotonic_clock.h"
#include "lib/registry/entry_runner.h"
#include "lib/registry/registry.h"
#include "proto/template.pb.h"

extern char** environ;

namespace forkserver {
namespace server_internal {
namespace {

using sandbox_child::SandboxFailure;
using sandbox_child::SandboxPlan;

int64_t NowUsec() { return absl::ToUnixMicros(MonotonicNow()); }

struct Running {
  int64_t id = 0;
  UniqueFd pidfd;
  // Its own mount namespace (fresh /proc and /tmp), held open here so that
  // the kernel tears it down when we close this, after the exit is
  // reported, not in the child's exit before its parent can reap it: the
  // unmounts wait for an RCU grace period (measured here: a third of the
  // time from a child's exit to its reaping). -1 where the kernel cannot
  // give it (PIDFD_GET_MNT_NAMESPACE, Linux 6.11).
  UniqueFd mount_namespace;
  int64_t start_usec = 0;
  int64_t deadline_usec = 0;  // 0: none.
  bool wall_killed = false;
  // The client asked for its group to be signalled: SIGKILLed when the
  // child ends, while its zombie still holds the group id.
  bool kill_group_on_exit = false;
};

// ioctl(pidfd, PIDFD_GET_MNT_NAMESPACE): linux/pidfd.h's _IO(0xFF, 3).
constexpr unsigned long kPidfdGetMountNamespace = (0xFFul << 8) | 3;

// The per-child parts of the plan that do not change between requests.
struct ChildBase {
  SandboxPlan plan;
  uint64_t flags = 0;
  std::string tmpfs_data;
};

ChildBase MakeBase(const sandbox::CompiledSandbox& sandbox) {
  ChildBase base;
  base.plan = sandbox.plan();
  base.plan.release_fd = -1;
  base.plan.parent_death_signal = SIGKILL;  // Dies with its template.
  base.flags = PerChildCloneFlags(sandbox);
  if (base.flags & CLONE_NEWNS) {
    for (const sandbox::Mount& m : sandbox.policy().filesystem().mounts()) {
      if (m.type() == sandbox::Mount::PROC && m.target() == "/proc") base.plan.fresh_proc = "/proc";
      if (m.type() == sandbox::Mount::TMPFS && m.target() == "/tmp") {
        base.tmpfs_data = absl::StrFormat("mode=%o", m.mode() ? m.mode() : 01777);
        if (m.size_bytes() > 0) base.tmpfs_data += absl::StrFormat(",size=%d", m.size_bytes());
        base.plan.fresh_tmpfs = "/tmp";
      }
    }
  }
  return base;
}

class TemplateLoop {
 public:
  TemplateLoop(int socket, const sandbox::CompiledSandbox& sandbox)
      : socket_(socket), base_(MakeBase(sandbox)) {
    base_.plan.fresh_tmpfs_data = base_.tmpfs_data.empty() ? nullptr : base_.tmpfs_data.c_str();
  }
  [[noreturn]] void Run();

 private:
  void OnRequest();
  void SignalGroup(const templ::TemplateRequest& request);
  void Launch(const templ::TemplateRequest& request, std::vector<UniqueFd>& fds);
  void ReportLaunchFailure(templ::TemplateEvent& event, pid_t pid,
                           int clone_errno, const SandboxFailure& failure,
                           int pidfd);
  void Started(const templ::TemplateRequest& request,
               templ::TemplateEvent& event, pid_t pid, int pidfd,
               int64_t start);
  void Reap();
  void KillOverdue();
  int TimeoutMillis() const;
  void Send(const templ::TemplateEvent& event, int fd = -1);

  int socket_;
  ChildBase base_;
  UniqueFd signals_;
  // The client descriptors a request brought go there (a template is
  // shared by every client of its policy; none may stall it with a
  // close that blocks). Its own, forked on first use: most requests
  // bring only pipes and files, which are closed in place (and each fork
  // of a template copies the preloaded server's page tables).
  ClientFdCloser closer_;
  absl::flat_hash_map<pid_t, Running> running_;
};

void TemplateLoop::Send(const templ::TemplateEvent& event, int fd) {
  absl::Status sent = fd >= 0 ? SendPacket(socket_, event.SerializeAsString(), {&fd, 1})
                              : SendPacket(socket_, event.SerializeAsString());
  if (!sent.ok()) ::_exit(0);  // The server is gone.
}

void TemplateLoop::Run() {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  signals_.reset(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) ::_exit(1);
  while (true) {
    pollfd fds[2] = {{socket_, POLLIN, 0}, {signals_.get(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, TimeoutMillis());
    if (ready < 0 && errno != EINTR) ::_exit(1);
    if (fds[1].revents != 0) Reap();
    KillOverdue();
    if (fds[0].revents != 0) OnRequest();
  }
}

void TemplateLoop::OnRequest() {
  Packet packet;
  absl::Status received = ReceivePacket(socket_, absl::InfinitePast(), &packet);
  absl::Cleanup release = [&] { closer_.Release(packet.fds); };
  if (absl::IsDeadlineExceeded(received)) return;
  if (!received.ok()) ::_exit(0);  // EOF: the server let us go (or died).
  templ::TemplateRequest request;
  if (!request.ParseFromString(packet.bytes)) ::_exit(1);
  if (request.signal_group() != 0) {
    SignalGroup(request);
    return;
  }
  Launch(request, packet.fds);
}

void TemplateLoop::SignalGroup(const templ::TemplateRequest& request) {
  for (auto& [pid, running] : running_) {
    if (running.id != request.id()) continue;
    // Unreaped (it is in running_), so the group id is still its.
    running.kill_group_on_exit = true;
    ::kill(-pid, request.signal_group());
    return;
  }
  // Gone already: its exit notice is on the way; nothing to signal.
}

// Entry mode: what the child runs once its steps are done. Built in the
// template before clone3; the child reads it from its copy of the frame.
struct EntryLaunch {
  EntryFunction function = nullptr;
  absl::string_view arg;
  std::string entry_name;
  char comm[16] = {};
  char** envp = nullptr;
  // It is pid 1 of its own pid namespace (no reaping init).
  bool pid1 = false;
};

// A pid 1 gets from outside its namespace only the signals it handles,
// so the entry would never see the SIGTERM of Process::Terminate or a
// Pool's hard limit: these end it as 128+N instead (the code the reaping
// init reports for a payload killed by N). The entry may install its own.
void ExitOnSignal(int sig) { ::_exit(128 + sig); }

void HandleTerminationAsPid1() {
  struct sigaction action = {};
  action.sa_handler = ExitOnSignal;
  for (int sig : {SIGTERM, SIGHUP, SIGINT, SIGQUIT}) (void)::sigaction(sig, &action, nullptr);
}

// The child's part of a launch; async-signal-safe from clone3 on, until
// the steps returned in entry mode: then it is a single-threaded copy of
// the single-threaded template with its filter loaded, and runs ordinary
// code (the entry), as an entry-mode child of the server does.
[[noreturn]] void RunChild(const SandboxPlan& plan, const sandbox_child::TemplateChildFds& fds,
                           int report_read, const EntryLaunch* entry) {
  ::close(report_read);
  if (entry != nullptr) (void)::prctl(PR_SET_NAME, entry->comm, 0, 0, 0);
  sandbox_child::PrepareTemplateChildAsyncSafe(plan, fds);
  sandbox_child::RunSandboxStepsAsyncSafe(plan, sandbox_child::kPerChild);
  if (entry == nullptr) ::_exit(sandbox_child::kSandboxFailedExitCode);  // Not reached.
  environ = entry->envp;  // The policy's environment over the server's.
  if (entry->pid1) HandleTerminationAsPid1();
  ::close(plan.report_fd);  // Set up: the template reads EOF.
  DiscardInheritedStdioBuffers();
  RunEntryAndExit(entry->function, entry->arg, entry->entry_name);
}

// An exec-mode launch without copying the template's page tables (as
// posix_spawn, and the server's plain launches, forkserver/child/
// vfork_exec.cc): the child shares our memory until it execs or fails, and
// we are suspended meanwhile. RunChild's exec path keeps to the rules that
// makes safe: it writes only its stack (and errno), its fd table, signal
// handlers and namespaces are its own. Not with the reaping init (the
// child would run the init's wait loop in our memory and never exec), nor
// CLONE_INTO_CGROUP (clone3 only), nor in entry mode.
struct VforkLaunch {
  const SandboxPlan* plan;
  const sandbox_child::TemplateChildFds* fds;
  int report_read;
};

int VforkChildMain(void* arg) {
  const VforkLaunch& launch = *static_cast<const VforkLaunch*>(arg);
  RunChild(*launch.plan, *launch.fds, launch.report_read, nullptr);
}

// Entry mode: every descriptor the child reads before its own are
// installed (report pipe, cgroup fds, sources) must sit above every
// target, or installing a target would overwrite it first.
bool RaiseAbove(int& fd, int max_target) {
  if (fd > max_target) return true;
  const int raised = ::fcntl(fd, F_DUPFD_CLOEXEC, max_target + 1);
  if (raised < 0) return false;
  ::close(fd);
  fd = raised;
  return true;
}

// Entry mode: the entry, its argument (inline, or mapped from its memfd
// into `mapped`, which the child inherits) and its environment.
bool PrepareEntry(const templ::TemplateRequest& request, std::vector<UniqueFd>& fds,
                  std::vector<char*>& envp, MappedArgument& mapped, EntryLaunch& entry) {
  entry.function = FindEntry(request.entry());
  if (entry.function == nullptr) return false;  // The server checked; never here.
  entry.entry_name = request.entry();
  const std::string& name = request.name().empty() ? request.entry() : request.name();
  name.copy(entry.comm, sizeof(entry.comm) - 1);
  entry.arg = request.arg();
  if (request.arg_in_memfd()) {
    absl::StatusOr<MappedArgument> map =
        MappedArgument::Map(fds[request.child_fds_size()].get());
    if (!map.ok()) return false;
    mapped = *std::move(map);
    entry.arg = mapped.view();
  }
  entry.envp = envp.data();
  return true;
}

bool IsPid1(uint64_t clone_flags, const SandboxPlan& plan) {
  return (clone_flags & CLONE_NEWPID) != 0 && !plan.pid1_init;
}

// A little over our 60-line rule: the child reads argv, envp and the
// rlimits through pointers into this frame after clone3, so they are
// built here, next to the clone, where their lifetime is plain to see.
void TemplateLoop::Launch(const templ::TemplateRequest& request, std::vector<UniqueFd>& fds) {
  const int64_t start = NowUsec();
  const bool entry_mode = !request.entry().empty();
  templ::TemplateEvent event;
  event.set_id(request.id());
  // argv and env inline, or, too big for a packet, in the server's sealed
  // memfd (after the child's fds).
  const bool strings_in_memfd = !entry_mode && request.exec().strings_in_memfd();
  wire::ExecStrings from_memfd;
  if (strings_in_memfd) {
    absl::StatusOr<wire::ExecStrings> read =
        ReadExecStrings(fds[request.child_fds_size()].get());
    if (!read.ok()) {
      event.mutable_failed()->set_errno_value(EINVAL);
      Send(event);
      return;
    }
    from_memfd = *std::move(read);
  }
  const wire::ExecStrings* memfd = strings_in_memfd ? &from_memfd : nullptr;
  std::vector<char*> argv, envp;
  for (const std::string& a : memfd ? memfd->argv() : request.exec().argv()) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  for (const std::string& e : memfd ? memfd->env() : request.exec().env()) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  std::vector<sandbox_child::RlimitOp> rlimits;
  for (const templ::RlimitValue& r : request.rlimits()) {
    rlimits.push_back({r.resource(), {r.soft(), r.hard()}});
  }
  EntryLaunch entry;
  MappedArgument mapped;
  if (entry_mode && !PrepareEntry(request, fds, envp, mapped, entry)) {
    event.mutable_failed()->set_errno_value(EINVAL);
    Send(event);
    return;
  }
  SandboxPlan plan = base_.plan;
  entry.pid1 = IsPid1(base_.flags, plan);
  if (!entry_mode) {
    plan.exec_path = request.exec().path().c_str();
    plan.exec_argv = argv.data();
    plan.exec_envp = envp.data();
  }
  plan.rlimits = rlimits.data();
  plan.rlimit_count = static_cast<int>(rlimits.size());
  sandbox_child::TemplateChildFds child_fds;
  child_fds.count = std::min(request.child_fds_size(), sandbox_child::kMaxTemplateChildFds);
  int keep[sandbox_child::kMaxTemplateChildFds + 1];
  for (int i = 0; i < child_fds.count; ++i) {
    child_fds.sources[i] = fds[i].get();
    child_fds.targets[i] = request.child_fds(i);
    keep[i] = request.child_fds(i);
    if (entry_mode) child_fds.max_target = std::max(child_fds.max_target, keep[i]);
  }
  struct clone_args args = {};
  const int cgroup_first = request.child_fds_size() + (request.arg_in_memfd() ? 1 : 0) +
                           (strings_in_memfd ? 1 : 0);
  bool raised = true;
  if (request.cgroup_v2() && request.cgroup_fd_count() == 1) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(fds[cgroup_first].get());
  } else {
    for (int i = 0; i < request.cgroup_fd_count() && i < sandbox_child::kMaxCgroupFds; ++i) {
      int fd = fds[cgroup_first + i].release();
      raised = RaiseAbove(fd, child_fds.max_target) && raised;
      fds[cgroup_first + i].reset(fd);
      plan.cgroup_procs_fds[plan.cgroup_fd_count++] = fd;
    }
  }
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    event.mutable_failed()->set_errno_value(errno);
    Send(event);
    return;
  }
  if (!raised || !RaiseAbove(report[1], child_fds.max_target)) {
    event.mutable_failed()->set_errno_value(errno != 0 ? errno : EMFILE);
    ::close(report[0]);
    ::close(report[1]);
    Send(event);
    return;
  }
  plan.report_fd = report[1];
  keep[child_fds.count] = report[1];
  plan.keep_fds = keep;
  plan.keep_fd_count = child_fds.count + 1;
  int pidfd = -1;
  long pid;
  if (!entry_mode && !plan.pid1_init && (args.flags & CLONE_INTO_CGROUP) == 0 &&
      VforkExecAvailable()) {
    VforkLaunch launch{&plan, &child_fds, report[0]};
    pid = CloneVforkAsyncSafe(VforkChildMain, &launch, static_cast<int>(base_.flags), &pidfd);
  } else {
    args.flags |= base_.flags | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    pid = ::syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) RunChild(plan, child_fds, report[0], entry_mode ? &entry : nullptr);
  }
  ::close(report[1]);
  SandboxFailure failure{};
  ssize_t n = -1;
  if (pid > 0) {
    while ((n = ::read(report[0], &failure, sizeof(failure))) < 0 && errno == EINTR) {
    }
  }
  ::close(report[0]);
  if (pid < 0 || n != 0) {
    const int clone_errno = errno;
    ReportLaunchFailure(event, static_cast<pid_t>(pid), clone_errno, failure,
                        pidfd);
    return;
  }
  Started(request, event, static_cast<pid_t>(pid), pidfd, start);
}

// clone3 failed (pid < 0, errno in clone_errno), or the child's per-child
// steps did (its failure record): reap it and tell the server which step.
void TemplateLoop::ReportLaunchFailure(templ::TemplateEvent& event, pid_t pid,
                                       int clone_errno,
                                       const SandboxFailure& failure,
                                       int pidfd) {
  templ::Failed& failed = *event.mutable_failed();
  failed.set_step(pid < 0 ? 0 : failure.step);
  failed.set_errno_value(pid < 0 ? clone_errno : failure.error);
  failed.set_index(pid < 0 ? -1 : failure.index);
  if (pid > 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  }
  Send(event);
}

// The child runs its program: track it (wall-time deadline) and hand its
// pidfd to the server.
void TemplateLoop::Started(const templ::TemplateRequest& request,
                           templ::TemplateEvent& event, pid_t pid, int pidfd,
                           int64_t start) {
  Running& running = running_[pid];
  running.id = request.id();
  running.pidfd.reset(pidfd);
  if (base_.flags & CLONE_NEWNS) {
    running.mount_namespace.reset(::ioctl(pidfd, kPidfdGetMountNamespace, 0));
  }
  running.start_usec = NowUsec();
  if (request.wall_time_ms() > 0) {
    running.deadline_usec = start + static_cast<int64_t>(request.wall_time_ms()) * 1000;
  }
  event.mutable_started()->set_setup_usec(running.start_usec - start);
  Send(event, pidfd);
}

void TemplateLoop::Reap() {
  signalfd_siginfo info;
  while (::read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
  }
  while (true) {
    // Look before reaping (WNOWAIT): while the child is a zombie its group
    // id cannot be reused, so a group the client asked to be signalled is
    // SIGKILLed now, grandchildren that ignored the signal included.
    siginfo_t exited_info{};
    if (::waitid(P_ALL, 0, &exited_info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: none left.
    }
    if (exited_info.si_pid == 0) return;
    const pid_t exited_pid = exited_info.si_pid;
    if (auto flagged = running_.find(exited_pid);
        flagged != running_.end() && flagged->second.kill_group_on_exit) {
      ::kill(-exited_pid, SIGKILL);
    }
    int status = 0;
    rusage usage{};
    const pid_t pid = ::wait4(exited_pid, &status, WNOHANG | __WALL, &usage);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) continue;
    auto it = running_.find(pid);
    if (it == running_.end()) continue;  // An orphan that came to us.
    templ::TemplateEvent event;
    event.set_id(it->second.id);
    templ::Exited& exited = *event.mutable_exited();
    exited.set_wait_status(status);
    exited.set_wall_usec(NowUsec() - it->second.start_usec);
    exited.set_wall_time_killed(it->second.wall_killed);
    exited.set_user_cpu_usec(absl::ToInt64Microseconds(absl::DurationFromTimeval(usage.ru_utime)));
    exited.set_system_cpu_usec(absl::ToInt64Microseconds(absl::DurationFromTimeval(usage.ru_stime)));
    exited.set_max_rss_kib(usage.ru_maxrss);
    exited.set_minor_faults(usage.ru_minflt);
    exited.set_major_faults(usage.ru_majflt);
    exited.set_voluntary_switches(usage.ru_nvcsw);
    exited.set_involuntary_switches(usage.ru_nivcsw);
    UniqueFd mount_namespace = std::move(it->second.mount_namespace);
    running_.erase(it);
    Send(event);
    mount_namespace.reset();  // Its teardown, now that the server knows.
  }
}

void TemplateLoop::KillOverdue() {
  const int64_t now = NowUsec();
  for (auto& [pid, running] : running_) {
    if (running.deadline_usec == 0 || running.wall_killed || now < running.deadline_usec) continue;
    ::syscall(SYS_pidfd_send_signal, running.pidfd.get(), SIGKILL, nullptr, 0);
    running.wall_killed = true;
  }
}

int TemplateLoop::TimeoutMillis() const {
  int64_t next = -1;
  for (const auto& [pid, running] : running_) {
    if (running.deadline_usec == 0 || running.wall_killed) continue;
    if (next < 0 || running.deadline_usec < next) next = running.deadline_usec;
  }
  if (next < 0) return -1;
  return static_cast<int>(std::clamp<int64_t>((next - NowUsec()) / 1000 + 1, 0, 60'000));
}

}  // namespace

uint64_t PerChildCloneFlags(const sandbox::CompiledSandbox& sandbox) {
  const sandbox::Namespaces& ns = sandbox.policy().namespaces();
  if (ns.pid() && ns.mount()) return CLONE_NEWPID | CLONE_NEWNS;
  return ns.pid() ? CLONE_NEWPID : 0;
}

void ServeTemplate(int socket, const sandbox::CompiledSandbox& sandbox) {
  TemplateLoop loop(socket, sandbox);
  loop.Run();
}

}  // namespace server_internal
}  // namespace forkserver
