#include "forkserver/templates.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "forkserver/child/sandbox/report.h"
#include "forkserver/child/sandbox/template_child.h"
#include "forkserver/fd_budget.h"
#include "forkserver/memfd_args.h"
#include "forkserver/sandbox/launcher.h"
#include "forkserver/sandbox/names.h"
#include "forkserver/sandbox/policy_parser.h"
#include "forkserver/sandbox/policy_validator.h"
#include "forkserver/sandbox/seccomp_log.h"
#include "forkserver/server_log.h"
#include "forkserver/template_main.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/sealed_memfd.h"
#include "lib/base/status_macros.h"
#include "lib/ipc/seqpacket.h"
#include "lib/registry/registry.h"

extern char** environ;

namespace forkserver {
namespace server_internal {

struct TemplateCache::Pending {
  int connection = -1;
  bool kill_on_disconnect = true;
  pid_t pid = 0;  // Host pid once started.
  std::unique_ptr<sandbox::CgroupLeaf> leaf;
  uint64_t start_monotonic_us = 0;
  absl::Time sent_at;  // MonotonicNow() when forwarded to the template.
  int64_t setup_usec = 0;
  bool template_built = false;
  uint64_t cpu_time_ms = 0;
  // The payload runs under a reaping pid 1, whose exit code 128+N says the
  // payload died of signal N (forkserver/child/sandbox/steps.cc).
  bool reaping_init = false;
};

struct TemplateCache::Template {
  std::string key;
  std::unique_ptr<sandbox::CompiledSandbox> sandbox;
  TemplateProcess process;  // process.entering valid: not entered yet.
  absl::Duration setup_time;  // Clone to entered.
  std::map<int64_t, Pending> launches;
  int64_t launches_total = 0;
  absl::Time last_used;
};

namespace {

// Room kept in a template request's packet for what is added after its
// size is checked (the cgroup fields).
constexpr size_t kTemplateRequestSlack = 1024;

// The long-lived part of a policy: what the template holds.
std::string TemplateKey(const sandbox::Policy& policy) {
  sandbox::Policy part;
  *part.mutable_namespaces() = policy.namespaces();
  *part.mutable_filesystem() = policy.filesystem();
  *part.mutable_privileges() = policy.privileges();
  if (policy.has_seccomp()) *part.mutable_seccomp() = policy.seccomp();
  part.mutable_process()->set_cwd(policy.process().cwd());
  part.mutable_process()->set_die_with_parent(policy.process().die_with_parent());
  std::string key;
  google::protobuf::io::StringOutputStream stream(&key);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  part.SerializeToCodedStream(&coded);
  coded.Trim();
  return key;
}

wire::ServerMessage ErrorReply(const absl::Status& status, const std::string& step = "",
                               int error = 0) {
  wire::ServerMessage message;
  message.mutable_error()->set_code(static_cast<int>(status.code()));
  message.mutable_error()->set_message(std::string(status.message()));
  message.mutable_error()->set_step(step);
  message.mutable_error()->set_errno_value(error);
  return message;
}

// The host pid of a pidfd (its "Pid:" line in our fdinfo).
pid_t PidOfPidfd(int pidfd) {
  std::ifstream in(absl::StrCat("/proc/self/fdinfo/", pidfd));
  std::string word;
  while (in >> word) {
    if (word == "Pid:") {
      long pid = -1;
      in >> pid;
      return static_cast<pid_t>(pid);
    }
  }
  return -1;
}

// The child's environment: the client's (unless clear_env), then the
// policy's variables over it.
// An entry-mode child's base is the server's own environment (what a
// plain entry-mode child has).
std::vector<std::string> SandboxEnvironment(const wire::SpawnRequest& request,
                                            const wire::ExecStrings& client,
                                            const sandbox::Policy& policy) {
  std::vector<std::string> base;
  if (request.kind() == wire::SPAWN_KIND_ENTRY) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) base.emplace_back(*e);
  } else {
    base.assign(client.env().begin(), client.env().end());
  }
  std::map<std::string, std::string> values;
  if (!policy.process().clear_env()) {
    for (const std::string& entry : base) {
      const size_t eq = entry.find('=');
      if (eq != std::string::npos) values[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  }
  for (const sandbox::EnvVar& var : policy.process().env()) values[var.name()] = var.value();
  std::vector<std::string> env;
  for (const auto& [name, value] : values) env.push_back(name + "=" + value);
  return env;
}

void AddRlimits(const sandbox::Policy& policy, templ::TemplateRequest& request) {
  // First the soft descriptor limit the server was started with (it raised
  // its own, forkserver/fd_budget.h); a profile's "nofile" comes after it
  // and wins.
  if (const int64_t soft = FdLimitForChildren(); soft >= 0) {
    rlimit current{};
    ::getrlimit(RLIMIT_NOFILE, &current);
    templ::RlimitValue& r = *request.add_rlimits();
    r.set_resource(RLIMIT_NOFILE);
    r.set_soft(static_cast<uint64_t>(soft));
    r.set_hard(current.rlim_max);
  }
  for (const sandbox::Rlimit& limit : policy.rlimits()) {
    templ::RlimitValue& r = *request.add_rlimits();
    r.set_resource(*sandbox::RlimitFromName(limit.name()));  // Validated.
    r.set_soft(limit.soft_unlimited() ? RLIM64_INFINITY : limit.soft());
    r.set_hard(limit.hard_unlimited() ? RLIM64_INFINITY : limit.hard());
  }
  if (const uint64_t ms = policy.limits().cpu_time_ms(); ms > 0) {
    // SIGXCPU at the soft limit, SIGKILL a second later.
    templ::RlimitValue& r = *request.add_rlimits();
    r.set_resource(RLIMIT_CPU);
    r.set_soft((ms + 999) / 1000);
    r.set_hard((ms + 999) / 1000 + 1);
  }
}

// Descriptors a sandboxed child may be given: exec mode only its stdio
// (0..2); entry mode also its channels to the client (a Process's
// pipes, a Pool worker's socket), at most kMaxTemplateChildFds of them.
absl::Status CheckChildFds(const wire::SpawnRequest& request) {
  const bool entry = request.kind() == wire::SPAWN_KIND_ENTRY;
  if (request.child_fds_size() > sandbox_child::kMaxTemplateChildFds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "child_fds: a sandboxed child gets at most ", sandbox_child::kMaxTemplateChildFds,
        " descriptors, not ", request.child_fds_size()));
  }
  for (int fd : request.child_fds()) {
    if (!entry && fd > 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "child_fds: a sandboxed exec-mode child gets only 0..2, not ", fd));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<sandbox::Policy> PolicyOf(const wire::SpawnRequest& request) {
  if (request.kind() == wire::SPAWN_KIND_ENTRY && FindEntry(request.entry()) == nullptr) {
    return absl::NotFoundError(absl::StrCat("no entry point named '", request.entry(),
                                            "' is registered in this binary (FORKSERVER_ENTRY)"));
  }
  if (request.has_sandbox() && !request.sandbox_text().empty()) {
    return absl::InvalidArgumentError("spawn request with both sandbox and sandbox_text");
  }
  RETURN_IF_ERROR(CheckChildFds(request));
  if (!request.exec().cwd().empty()) {
    return absl::InvalidArgumentError(
        "exec.cwd: a sandboxed child starts in the policy's process.cwd");
  }
  sandbox::Policy policy;
  if (request.has_sandbox()) {
    policy = request.sandbox();
  } else {
    ASSIGN_OR_RETURN(policy, sandbox::ParsePolicyText(request.sandbox_text(), "profile"));
  }
  RETURN_IF_ERROR(sandbox::ValidatePolicy(policy));
  return policy;
}

}  // namespace

TemplateCache::TemplateCache(EventSet& events, ChildTable& children, size_t capacity)
    : events_(events), children_(children), capacity_(capacity) {}

TemplateCache::~TemplateCache() { Clear(); }

absl::Status TemplateCache::Launch(const wire::SpawnRequest& request,
                                   std::vector<UniqueFd>& fds, int connection,
                                   SandboxReplies& replies) {
  ASSIGN_OR_RETURN(const sandbox::Policy policy, PolicyOf(request));
  if (FdTableNearlyFull()) {
    // The template's answer carries the child's pidfd: one we could not
    // receive would cost the template, and every child it runs.
    return absl::ResourceExhaustedError(absl::StrCat(
        "fork server is out of file descriptors (RLIMIT_NOFILE ", FdLimit(),
        "): no room for a sandboxed child's pidfd"));
  }
  const bool entry = request.kind() == wire::SPAWN_KIND_ENTRY;
  if (entry && request.arg_in_memfd()) {
    // Checked here, so a bad memfd is the client's INVALID_ARGUMENT, not
    // a failure inside the template; the template maps it again.
    ASSIGN_OR_RETURN(MappedArgument checked, MappedArgument::Map(fds.back().get()));
  }
  bool built = false;
  ASSIGN_OR_RETURN(Template* const t, FindOrBuild(policy, replies, &built));
  Pending pending;
  pending.connection = connection;
  pending.kill_on_disconnect = request.kill_on_disconnect();
  // Its setup time counts the template's when this launch built it
  // (added once the template has entered: CheckEntered).
  pending.template_built = built;
  pending.cpu_time_ms = policy.limits().cpu_time_ms();
  pending.reaping_init = policy.namespaces().pid() && policy.namespaces().reaping_init();
  if (sandbox::CgroupManager::Needed(policy.limits())) {
    ASSIGN_OR_RETURN(pending.leaf, MakeLeaf(policy.limits()));
  }
  templ::TemplateRequest forward;
  const int64_t id = next_id_++;
  forward.set_id(id);
  wire::ExecSpec& exec = *forward.mutable_exec();
  if (entry) {
    forward.set_entry(request.entry());
    forward.set_name(request.name());
    forward.set_arg(request.arg());
    forward.set_arg_in_memfd(request.arg_in_memfd());
  }
  // An exec's argv and env: inline, or (past 48 KiB) in the client's memfd,
  // read and checked here as for a plain launch (children.cc).
  wire::ExecStrings client;
  if (!entry) {
    exec.set_path(request.exec().path());
    if (request.exec().strings_in_memfd()) {
      ASSIGN_OR_RETURN(client, ReadExecStrings(fds.back().get()));
    } else {
      *client.mutable_argv() = request.exec().argv();
      *client.mutable_env() = request.exec().env();
    }
    *exec.mutable_argv() = client.argv();
  }
  for (std::string& e : SandboxEnvironment(request, client, policy)) exec.add_env(std::move(e));
  *forward.mutable_child_fds() = request.child_fds();
  AddRlimits(policy, forward);
  forward.set_wall_time_ms(policy.limits().wall_time_ms());
  std::vector<int> send_fds;
  for (int i = 0; i < request.child_fds_size(); ++i) send_fds.push_back(fds[i].get());
  if (entry && request.arg_in_memfd()) send_fds.push_back(fds.back().get());
  UniqueFd strings_memfd;
  if (!entry && forward.ByteSizeLong() > kMaxPacketBytes - kTemplateRequestSlack) {
    // Too big for one packet to the template: argv and env (the policy's
    // env applied) go in a sealed memfd of our own, which it reads.
    wire::ExecStrings strings;
    *strings.mutable_argv() = exec.argv();
    *strings.mutable_env() = exec.env();
    ASSIGN_OR_RETURN(strings_memfd,
                     MakeSealedMemfd("sandbox-exec-strings", strings.SerializeAsString()));
    exec.clear_argv();
    exec.clear_env();
    exec.set_strings_in_memfd(true);
    send_fds.push_back(strings_memfd.get());
  }
  const int before_cgroup = static_cast<int>(send_fds.size());
  if (pending.leaf != nullptr) {
    forward.set_cgroup_v2(pending.leaf->is_v2());
    if (pending.leaf->is_v2()) {
      send_fds.push_back(pending.leaf->v2_dir_fd());
    } else {
      for (int fd : pending.leaf->v1_procs_fds()) send_fds.push_back(fd);
    }
    forward.set_cgroup_fd_count(static_cast<int>(send_fds.size()) - before_cgroup);
  }
  if (absl::Status sent = SendPacket(t->process.socket.get(), forward.SerializeAsString(), send_fds);
      !sent.ok()) {
    return absl::UnavailableError(absl::StrCat("sandbox template (pid ", t->process.pid,
                                               ") did not take the request: ", sent.message()));
  }
  pending.start_monotonic_us = sandbox::MonotonicMicros();
  pending.sent_at = MonotonicNow();
  t->launches.emplace(id, std::move(pending));
  ++t->launches_total;
  return absl::OkStatus();
}

namespace {

// The template has exited (killed, or its loop failed) though the server
// may not have read its socket's EOF yet: a request sent to it now would
// be lost. Its pidfd is readable once it is gone.
bool Gone(const TemplateProcess& process) {
  pollfd pfd{process.pidfd.get(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1;
}

}  // namespace

absl::StatusOr<TemplateCache::Template*> TemplateCache::FindOrBuild(const sandbox::Policy& policy,
                                                                      SandboxReplies& replies,
                                                                      bool* built) {
  std::string key = TemplateKey(policy);
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if ((*it)->key != key) continue;
    if (Gone((*it)->process)) {
      Drop(**it, &replies);  // Its launches are told; a new one is built below.
      break;
    }
    lru_.splice(lru_.begin(), lru_, it);  // Most recently used.
    lru_.front()->last_used = MonotonicNow();
    return lru_.front().get();
  }
  RETURN_IF_ERROR(MakeRoom());
  auto t = std::make_unique<Template>();
  t->key = std::move(key);
  // No throw-away probe child: the template's clone is the probe, and
  // this loop never waits for a child (StartTemplate).
  sandbox::CompileOptions options;
  options.probe_host = false;
  ASSIGN_OR_RETURN(t->sandbox, sandbox::CompiledSandbox::Create(policy, options));
  ASSIGN_OR_RETURN(t->process, StartTemplate(*t->sandbox));
  t->last_used = MonotonicNow();
  events_.Watch(t->process.socket.get(), EventSource::kTemplate);
  by_socket_[t->process.socket.get()] = t.get();
  // Launches go to its socket at once and wait there; the loop learns
  // when it has entered (or failed to) from this pipe.
  events_.Watch(t->process.entering.get(), EventSource::kTemplate);
  by_socket_[t->process.entering.get()] = t.get();
  lru_.push_front(std::move(t));
  *built = true;
  return lru_.front().get();
}

absl::Status TemplateCache::MakeRoom() {
  if (lru_.size() < capacity_) return absl::OkStatus();
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    if ((*it)->launches.empty()) {
      Drop(**it, nullptr);
      return absl::OkStatus();
    }
  }
  return absl::UnavailableError(
      absl::StrCat("all ", capacity_, " sandbox templates are busy; retry later"));
}

absl::StatusOr<std::unique_ptr<sandbox::CgroupLeaf>> TemplateCache::MakeLeaf(
    const sandbox::Limits& limits) {
  const int mask = (limits.memory_bytes() > 0 ? 1 : 0) | (limits.pids_max() > 0 ? 2 : 0) |
                   (limits.cpu_millicores() > 0 ? 4 : 0);
  std::unique_ptr<sandbox::CgroupManager>& manager = cgroups_[mask];
  if (manager == nullptr) {
    absl::StatusOr<std::unique_ptr<sandbox::CgroupManager>> made =
        sandbox::CgroupManager::Create(limits);
    if (!made.ok()) {
      cgroups_.erase(mask);
      return made.status();
    }
    manager = std::move(*made);
  }
  return manager->CreateLeaf(limits);
}

bool TemplateCache::CheckEntered(Template& t, SandboxReplies& replies) {
  if (!t.process.entering) return true;
  EnterVerdict verdict = ReadEnterVerdict(*t.sandbox, t.process.entering.get());
  if (!verdict.known) return true;  // Still entering.
  if (!verdict.status.ok()) {
    // Every launch sent to it hears which step the host could not do.
    const wire::ServerMessage why = ErrorReply(verdict.status, verdict.step, verdict.error);
    Drop(t, &replies, &why);
    return false;
  }
  t.setup_time = MonotonicNow() - t.process.started;
  for (auto& [id, p] : t.launches) {
    if (p.template_built) p.setup_usec += absl::ToInt64Microseconds(t.setup_time);
  }
  events_.Unwatch(t.process.entering.get());
  by_socket_.erase(t.process.entering.get());
  t.process.entering.reset();
  return true;
}

absl::Time TemplateCache::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& t : lru_) {
    if (t->process.entering) {
      next = std::min(next, t->process.started + kTemplateEnterTimeout);
      continue;  // Its launches wait for it to enter first.
    }
    for (const auto& [id, p] : t->launches) {
      if (p.pid == 0) next = std::min(next, p.sent_at + kTemplateLaunchTimeout);
    }
  }
  return next;
}

void TemplateCache::DropLate(SandboxReplies& replies) {
  const absl::Time now = MonotonicNow();
  for (auto it = lru_.begin(); it != lru_.end();) {
    Template& t = **it++;  // Drop removes it from the list.
    if (t.process.entering) {
      if (now < t.process.started + kTemplateEnterTimeout) continue;
      const wire::ServerMessage why = ErrorReply(absl::DeadlineExceededError(absl::StrCat(
          "the sandbox template for policy '", t.sandbox->policy().name(), "' did not enter its ",
          "namespaces and filesystem view within ", absl::FormatDuration(kTemplateEnterTimeout),
          " (a mount source on a hung file system?); it was killed")));
      Drop(t, &replies, &why);
      continue;
    }
    // A template that has entered starts a child in milliseconds; one that
    // leaves a launch unanswered this long is stopped or stuck, and every
    // client of its policy with it: killed, its launches told, the next
    // request builds a new one.
    bool late = false;
    for (const auto& [id, p] : t.launches) late = late || (p.pid == 0 && now >= p.sent_at + kTemplateLaunchTimeout);
    if (!late) continue;
    const wire::ServerMessage why = ErrorReply(absl::DeadlineExceededError(absl::StrCat(
        "the sandbox template (pid ", t.process.pid, ") for policy '", t.sandbox->policy().name(),
        "' did not start a launch within ", absl::FormatDuration(kTemplateLaunchTimeout),
        "; it was killed (the next request builds a new one)")));
    Drop(t, &replies, &why);
  }
}

void TemplateCache::OnReadable(int fd, SandboxReplies& replies) {
  Template* t = by_socket_.at(fd);
  // The verdict first, also when its socket woke us: a template that
  // failed to enter has exited, and its launches should hear the step,
  // not "died".
  if (!CheckEntered(*t, replies) || fd != t->process.socket.get()) return;
  while (true) {
    Packet packet;
    absl::Status received = ReceivePacket(fd, absl::InfinitePast(), &packet);
    if (absl::IsDeadlineExceeded(received)) return;  // Drained.
    templ::TemplateEvent event;
    if (!received.ok() || !event.ParseFromString(packet.bytes)) {
      if (!IsPeerClosed(received)) Log(absl::StrCat("sandbox template: ", received.ToString()));
      Drop(*t, &replies);
      return;
    }
    OnEvent(*t, event, packet.fds, replies);
  }
}

void TemplateCache::OnEvent(Template& t, const templ::TemplateEvent& event,
                            std::vector<UniqueFd>& fds, SandboxReplies& replies) {
  auto it = t.launches.find(event.id());
  if (it == t.launches.end()) return;
  Pending& p = it->second;
  switch (event.event_case()) {
    case templ::TemplateEvent::kStarted:
      if (fds.size() == 1) {
        OnStarted(p, std::move(fds[0]), event.started().setup_usec(), replies);
        return;
      }
      break;
    case templ::TemplateEvent::kExited:
      OnExited(p, event.exited(), replies);
      t.launches.erase(it);
      return;
    case templ::TemplateEvent::kFailed: {
      const templ::Failed& f = event.failed();
      const sandbox_child::SandboxFailure failure{f.step(), f.errno_value(), f.index()};
      const absl::Status status = sandbox::SandboxFailureToStatus(
          failure, t.sandbox->DescribeFailureItem(f.step(), f.index()));
      if (p.connection >= 0) {
        replies.SandboxFailed(p.connection,
                              ErrorReply(status, sandbox_child::SandboxStepName(f.step()),
                                         f.errno_value()));
      }
      t.launches.erase(it);
      return;
    }
    default:
      break;
  }
  Log("sandbox template: malformed event");
}

void TemplateCache::OnStarted(Pending& p, UniqueFd pidfd, int64_t setup_usec,
                              SandboxReplies& replies) {
  p.pid = PidOfPidfd(pidfd.get());
  p.setup_usec += setup_usec;
  const int pidfd_number = pidfd.get();
  children_.Adopt(p.pid, std::move(pidfd), p.kill_on_disconnect);
  children_.at(p.pid).reaped_by_template = true;
  if (p.connection < 0) {
    // Its client left before it could learn the pid: nobody can ever
    // signal or wait for it, so it must not run (as ChildTable::Disown
    // does for a plain child).
    ::syscall(SYS_pidfd_send_signal, pidfd_number, SIGKILL, nullptr, 0);
    Log(absl::StrCat("killed sandboxed child ", p.pid,
                     ": its client left before it got the child's pid"));
    return;
  }
  children_.at(p.pid).connection = p.connection;
  replies.SandboxStarted(p.connection, p.pid);
}

namespace {

// The signal the payload died of: its own wait status's, or, under the
// reaping init, the one the init's exit code 128+N reports. (A payload
// that itself exits with 128+N reads as killed by N there: the init cannot
// tell them apart, as a shell cannot.)
int PayloadSignal(int wait_status, bool reaping_init) {
  if (WIFSIGNALED(wait_status)) return WTERMSIG(wait_status);
  const int code = WEXITSTATUS(wait_status);
  if (reaping_init && code > 128 && code < 128 + NSIG) return code - 128;
  return 0;
}

wire::KillReason Classify(int wait_status, bool reaping_init, bool wall_killed,
                          const sandbox::CgroupLeaf* leaf, const wire::ExecutionStats& stats,
                          uint64_t cpu_time_ms) {
  if (wall_killed) return wire::KILL_REASON_WALL_TIME;
  const int sig = PayloadSignal(wait_status, reaping_init);
  const int64_t cpu_ms = (stats.user_cpu_usec() + stats.system_cpu_usec()) / 1000;
  if (sig == SIGXCPU ||
      (sig == SIGKILL && cpu_time_ms > 0 && cpu_ms + 50 >= static_cast<int64_t>(cpu_time_ms))) {
    return wire::KILL_REASON_CPU_TIME;
  }
  if (sig == SIGKILL && leaf != nullptr && leaf->OomKilled()) return wire::KILL_REASON_MEMORY;
  if (sig == SIGSYS) return wire::KILL_REASON_SECCOMP;
  if (sig != 0) return wire::KILL_REASON_SIGNAL;
  if (WEXITSTATUS(wait_status) != 0 && leaf != nullptr && leaf->PidsLimitHit()) {
    return wire::KILL_REASON_PIDS;
  }
  return wire::KILL_REASON_NONE;
}

}  // namespace

void TemplateCache::OnExited(Pending& p, const templ::Exited& exited, SandboxReplies& replies) {
  wire::ServerMessage message;
  wire::ExitNotice& notice = *message.mutable_exited();
  const int status = exited.wait_status();
  notice.set_pid(p.pid);
  if (WIFSIGNALED(status)) {
    notice.set_signal(WTERMSIG(status));
    notice.set_core_dumped(WCOREDUMP(status));
  } else {
    notice.set_exit_code(WEXITSTATUS(status));
  }
  notice.set_user_cpu_usec(exited.user_cpu_usec());
  notice.set_system_cpu_usec(exited.system_cpu_usec());
  notice.set_max_rss_kib(exited.max_rss_kib());
  wire::ExecutionStats& stats = *notice.mutable_stats();
  stats.set_wall_usec(exited.wall_usec());
  stats.set_user_cpu_usec(exited.user_cpu_usec());
  stats.set_system_cpu_usec(exited.system_cpu_usec());
  stats.set_max_rss_kib(exited.max_rss_kib());
  stats.set_minor_faults(exited.minor_faults());
  stats.set_major_faults(exited.major_faults());
  stats.set_voluntary_switches(exited.voluntary_switches());
  stats.set_involuntary_switches(exited.involuntary_switches());
  stats.set_setup_usec(p.setup_usec);
  stats.set_template_built(p.template_built);
  if (p.leaf != nullptr) {
    if (std::optional<uint64_t> peak = p.leaf->MemoryPeak()) {
      stats.set_has_cgroup_memory_peak(true);
      stats.set_cgroup_memory_peak_bytes(static_cast<int64_t>(*peak));
    }
  }
  stats.set_kill_reason(Classify(status, p.reaping_init, exited.wall_time_killed(), p.leaf.get(),
                                 stats, p.cpu_time_ms));
  if (stats.kill_reason() == wire::KILL_REASON_SECCOMP) {
    absl::StatusOr<std::string> name = sandbox::FindSeccompKill(p.pid, p.start_monotonic_us);
    stats.set_seccomp_syscall(name.ok() ? *name
                                        : absl::StrCat("unknown: ", name.status().message()));
  }
  if (p.leaf != nullptr) {
    if (absl::Status removed = p.leaf->Remove(); !removed.ok()) {
      Log(absl::StrCat("sandbox cgroup leaf: ", removed.ToString()));
    }
  }
  Child* child = children_.Find(p.pid);
  if (child != nullptr && child->connection >= 0) replies.SandboxExited(*child, message);
  if (child != nullptr) children_.Erase(p.pid);
}

absl::Status TemplateCache::SignalGroup(pid_t pid, int sig) {
  for (auto& t : lru_) {
    for (auto& [id, p] : t->launches) {
      if (p.pid != pid) continue;
      templ::TemplateRequest request;
      request.set_id(id);
      request.set_signal_group(sig);
      if (absl::Status sent = SendPacket(t->process.socket.get(), request.SerializeAsString());
          !sent.ok()) {
        return absl::UnavailableError(absl::StrCat("sandbox template (pid ", t->process.pid,
                                                   ") did not take signal_group: ",
                                                   sent.message()));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();  // Gone: its exit notice is on the way.
}

void TemplateCache::ForgetConnection(int connection) {
  for (auto& t : lru_) {
    for (auto& [id, p] : t->launches) {
      if (p.connection == connection && p.pid == 0) p.connection = -1;
    }
  }
}

void TemplateCache::Drop(Template& t, SandboxReplies* replies,
                         const wire::ServerMessage* why_not_started) {
  const absl::Status gone = absl::UnavailableError(absl::StrCat(
      "the sandbox template (pid ", t.process.pid, ") for policy '", t.sandbox->policy().name(),
      "' died; the launch's status is unknown (the next request builds a new template)"));
  for (auto& [id, p] : t.launches) {
    if (p.pid == 0) {
      if (replies != nullptr && p.connection >= 0) {
        replies->SandboxFailed(p.connection,
                               why_not_started != nullptr ? *why_not_started : ErrorReply(gone));
      }
      continue;
    }
    Child* child = children_.Find(p.pid);
    if (child == nullptr) continue;
    if (replies != nullptr && child->connection >= 0) replies->SandboxExited(*child, ErrorReply(gone));
    children_.Erase(p.pid);
  }
  t.launches.clear();  // Leaves go (their tasks killed).
  ::syscall(SYS_pidfd_send_signal, t.process.pidfd.get(), SIGKILL, nullptr, 0);
  events_.Unwatch(t.process.socket.get());
  by_socket_.erase(t.process.socket.get());
  if (t.process.entering) {
    events_.Unwatch(t.process.entering.get());
    by_socket_.erase(t.process.entering.get());
  }
  // The server's reaper reaps the template (it is our child).
  lru_.remove_if([&t](const std::unique_ptr<Template>& p) { return p.get() == &t; });
}

void TemplateCache::FillStatus(wire::StatusReply& status) const {
  const absl::Time now = MonotonicNow();
  for (const auto& t : lru_) {
    wire::TemplateInfo& info = *status.add_templates();
    info.set_policy_name(t->sandbox->policy().name());
    info.set_pid(t->process.pid);
    int running = 0;
    for (const auto& [id, p] : t->launches) running += p.pid != 0 ? 1 : 0;
    info.set_running(running);
    info.set_launches_total(t->launches_total);
    info.set_idle_usec(absl::ToInt64Microseconds(now - t->last_used));
    info.set_entering(static_cast<bool>(t->process.entering));
  }
}

void TemplateCache::Clear() {
  while (!lru_.empty()) {
    Template& t = *lru_.front();
    const int pidfd = t.process.pidfd.release();
    Drop(t, nullptr);
    if (pidfd >= 0) {
      ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
      siginfo_t info;
      while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
      }
      ::close(pidfd);
    }
  }
}

}  // namespace server_internal
}  // namespace forkserver
