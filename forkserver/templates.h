// File: forkserver/templates.h
// -----------------------------------------------------------------------------
// Sandboxed exec-mode spawns: the fork server's cache of template zygotes
// (forkserver/template_main.h), one per distinct long-lived policy part
// (namespaces, filesystem, privileges, seccomp, process cwd and
// die_with_parent). Per-launch parts travel with each request: the
// environment (policy applied over the client's), rlimits and cpu_time_ms,
// the wall-time limit, and a cgroup leaf with the memory/pids/CPU limits,
// made here before the launch and removed after the exit.
//
// - Launch() parses (sandbox_text: INVALID_ARGUMENT with line:col),
//   validates (INVALID_ARGUMENT naming the field), finds or starts the
//   template and forwards the request without waiting. A template being
//   built is never waited for: the request waits in its socket, and a
//   step the host cannot do (FAILED_PRECONDITION naming it) or a template
//   that has not entered within kTemplateEnterTimeout (DEADLINE_EXCEEDED)
//   reaches every launch sent to it through SandboxReplies::SandboxFailed. The answer comes later through
//   SandboxReplies when the template's socket (one more fd in the epoll
//   set, EventSource::kTemplate) is readable: started (the child is then
//   in the ChildTable, so disown / terminate / kill-on-disconnect apply as
//   to any child), failed (the step), exited (an ExitNotice with
//   ExecutionStats and the kill reason).
// - Entry mode (SPAWN_KIND_ENTRY): the template is a fork of this
//   preloaded server, so its children have the registry and the
//   preloaded state; a child does the per-child steps and runs the
//   entry instead of exec (template_loop.h). Its descriptors (child_fds,
//   any numbers, at most kMaxTemplateChildFds) travel to the template
//   over SCM_RIGHTS and are all it keeps besides 0..2: its channel to
//   the client needs no filesystem view. Its environment is the
//   server's with the policy applied. An unknown entry is NOT_FOUND.
// - A template that dies: every launch in flight through it gets an
//   UNAVAILABLE error; the next request builds a new one (also when the
//   server has not read the dead template's EOF yet: Launch checks its
//   pidfd).
// - At most `capacity` templates; the least recently used idle one is let
//   go for a new one (UNAVAILABLE when all are busy). Clear() kills and
//   reaps them all (shutdown).
// Exec mode: child fds 0..2 only. Single-threaded, never blocks.
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_TEMPLATES_H_
#define FORKSERVER_FORKSERVER_TEMPLATES_H_

#include <sys/types.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "forkserver/children.h"
#include "forkserver/event_set.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "lib/base/unique_fd.h"
#include "proto/template.pb.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {

// What the connections do with a template's answers (ConnectionTable).
class SandboxReplies {
 public:
  virtual ~SandboxReplies() = default;
  // `pid` is in the ChildTable with its pidfd, reporting to `connection`.
  virtual void SandboxStarted(int connection, pid_t pid) = 0;
  virtual void SandboxFailed(int connection, const wire::ServerMessage& error) = 0;
  // `child` reports to a connection (>= 0); `message` is its exit notice
  // or an error.
  virtual void SandboxExited(Child& child, const wire::ServerMessage& message) = 0;
};

class TemplateCache {
 public:
  TemplateCache(EventSet& events, ChildTable& children, size_t capacity = 8);
  ~TemplateCache();
  TemplateCache(const TemplateCache&) = delete;
  TemplateCache& operator=(const TemplateCache&) = delete;

  static bool IsSandboxed(const wire::SpawnRequest& request) {
    return request.has_sandbox() || !request.sandbox_text().empty();
  }
  // OK: forwarded, the answer comes through SandboxReplies.
  // `replies` hears of launches through a template found dead here.
  absl::Status Launch(const wire::SpawnRequest& request, std::vector<UniqueFd>& fds,
                      int connection, SandboxReplies& replies);
  bool Owns(int fd) const { return by_socket_.contains(fd); }
  void OnReadable(int fd, SandboxReplies& replies);
  // The connection is gone: launches still starting through it are
  // killed once started (they would have nobody to report to).
  void ForgetConnection(int connection);
  // signal_group for a sandboxed child `pid`: forwarded to its template,
  // which reaps it (so only it can signal the group, and SIGKILL it when
  // the child ends, without a group id that may have been reused). OK
  // when the child is gone already; UNAVAILABLE when its template cannot
  // be told.
  absl::Status SignalGroup(pid_t pid, int sig);
  void FillStatus(wire::StatusReply& status) const;
  // The earliest time a template still entering must have entered by.
  absl::Time NextDeadline() const;
  // Kills the templates past that time; their launches get
  // DEADLINE_EXCEEDED.
  void DropLate(SandboxReplies& replies);
  void Clear();

 private:
  struct Template;
  struct Pending;
  absl::StatusOr<Template*> FindOrBuild(const sandbox::Policy& policy, SandboxReplies& replies,
                                        bool* built);
  absl::Status MakeRoom();
  absl::StatusOr<std::unique_ptr<sandbox::CgroupLeaf>> MakeLeaf(const sandbox::Limits& limits);
  void OnEvent(Template& t, const templ::TemplateEvent& event, std::vector<UniqueFd>& fds,
               SandboxReplies& replies);
  void OnStarted(Pending& p, UniqueFd pidfd, int64_t setup_usec, SandboxReplies& replies);
  void OnExited(Pending& p, const templ::Exited& exited, SandboxReplies& replies);
  // Reads the entering verdict, if in: false when the template failed to
  // enter and was dropped (its launches told the failed step).
  bool CheckEntered(Template& t, SandboxReplies& replies);
  // Kills the template. Launches not yet started hear `why_not_started`
  // (default: UNAVAILABLE, the template died); started ones an error
  // exit notice.
  void Drop(Template& t, SandboxReplies* replies,
            const wire::ServerMessage* why_not_started = nullptr);

  EventSet& events_;
  ChildTable& children_;
  const size_t capacity_;
  int64_t next_id_ = 1;
  std::list<std::unique_ptr<Template>> lru_;  // Most recent first.
  absl::flat_hash_map<int, Template*> by_socket_;
  std::map<int, std::unique_ptr<sandbox::CgroupManager>> cgroups_;  // By controller mask.
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_TEMPLATES_H_
