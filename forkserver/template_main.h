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
// StartTemplate runs in the server: it writes the id maps, releases the
// template and waits (bounded) for kEnter to finish; the only wait the
// server does on a template. Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_TEMPLATE_MAIN_H_
#define FORKSERVER_FORKSERVER_TEMPLATE_MAIN_H_

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace server_internal {

struct TemplateProcess {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd socket;  // O_CLOEXEC|O_NONBLOCK, SOCK_SEQPACKET.
  absl::Duration setup_time;
};

// The template for `sandbox`. Its failure to enter is the failed step's
// status (FAILED_PRECONDITION for id maps, else SandboxFailureToStatus);
// DEADLINE_EXCEEDED when it does not finish within `timeout`.
absl::StatusOr<TemplateProcess> StartTemplate(const sandbox::CompiledSandbox& sandbox,
                                              absl::Duration timeout = absl::Seconds(10));

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_TEMPLATE_MAIN_H_
