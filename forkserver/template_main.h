// File: forkserver/template_main.h
// -----------------------------------------------------------------------------
// A sandbox template zygote: a child of the fork server that entered a
// policy's long-lived namespaces and filesystem view once (steps.h kEnter)
// and holds its compiled plan and seccomp BPF; per TemplateRequest
// (proto/template.proto) it clone3s a child that does only the per-child
// steps (template_child.h, then steps.h kPerChild: own pid and mount
// namespace with a fresh /proc and /tmp where the view has them, cgroup,
// rlimits, capabilities, no_new_privs, close_fds, seccomp, execve; in
// entry mode close_others, seccomp, then the registered entry runs in
// the child, which the template, a fork of the preloaded server, has).
//
// The template is pid 1 of its own pid namespace (so it may mount proc
// and reaps whatever ends up there), dies with the server
// (PR_SET_PDEATHSIG), and is single-threaded: after clone3 it runs
// ordinary code, as an entry-mode child does. Its own loop polls the
// server socket, a SIGCHLD signalfd and the earliest wall-time deadline;
// it answers started (+ the child's pidfd) or failed, and exited (wait
// status, rusage, wall time) when it reaps. EOF on the socket: it exits,
// and its children with it (their pid namespaces' init is gone).
//
// StartTemplate runs in the server: it writes the id maps and releases
// the template, which then enters on its own; the server learns the
// verdict from the template's report pipe in its event loop
// (ReadEnterVerdict), never waiting for it. Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_TEMPLATE_MAIN_H_
#define FORKSERVER_FORKSERVER_TEMPLATE_MAIN_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace server_internal {

struct TemplateProcess {
  pid_t pid = -1;
  UniqueFd pidfd;
  // O_CLOEXEC|O_NONBLOCK, SOCK_SEQPACKET. Requests sent while it is still
  // entering wait in its queue; it reads them once it serves.
  UniqueFd socket;
  // Read end (O_NONBLOCK) of its report pipe while it enters its
  // namespaces and view: EOF once entered, or a SandboxFailure
  // (ReadEnterVerdict). Invalid once the verdict is in.
  UniqueFd entering;
  absl::Time started;  // MonotonicNow() at the clone.
};

// How long a template may take to enter before it is killed and its
// launches fail with DEADLINE_EXCEEDED. Below the client's default
// request_timeout (10 s, lib/client/fork_server_client.h), so a client
// hears this reason rather than its own timeout.
inline constexpr absl::Duration kTemplateEnterTimeout = absl::Seconds(5);
// How long an entered template may leave a launch unanswered (started or
// failed) before it is taken for stuck, killed, and its launches fail
// with DEADLINE_EXCEEDED.
inline constexpr absl::Duration kTemplateLaunchTimeout = absl::Seconds(5);

// Starts the template for `sandbox`: clone3, its id maps, its release. It
// does not wait for the template to enter (a view of many mounts, or a
// mount source on a hung FUSE file system, would hold the server's loop):
// the caller watches `entering`. FAILED_PRECONDITION naming the step when
// the clone or the id maps fail.
absl::StatusOr<TemplateProcess> StartTemplate(const sandbox::CompiledSandbox& sandbox);

// The entering verdict, read without blocking from `entering`.
struct EnterVerdict {
  bool known = false;  // False: still entering.
  absl::Status status;  // OK: entered. Else the failed step's status.
  std::string step;     // The failed step's name, if one failed.
  int error = 0;        // Its errno.
};
EnterVerdict ReadEnterVerdict(const sandbox::CompiledSandbox& sandbox, int entering);

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_TEMPLATE_MAIN_H_
