// File: forkserver/child/sandbox/template_child.h
// async-signal-safe: runs after fork.
//
// What a child cloned by a sandbox template (forkserver/template_main.h)
// does before the per-child sandbox steps (steps.h kPerChild):
//   install_fds    each source fd dup2'd to its target (exec mode: 0..2
//                  only, the exec step makes everything above 2
//                  close-on-exec; entry mode, max_target above 2: the
//                  entry's channel fds too, then close_others keeps them)
//   reset_signals  every handler SIG_DFL (SIGPIPE was ignored in the
//                  server), an empty signal mask (the server blocks
//                  SIGCHLD/SIGTERM/... for its signalfd)
//   new_session    setsid(): no controlling tty (bubblewrap CVE-2017-5226)
// A failure is reported like every sandbox step (report.h) and exits.

#ifndef FORKSERVER_CHILD_SANDBOX_TEMPLATE_CHILD_H_
#define FORKSERVER_CHILD_SANDBOX_TEMPLATE_CHILD_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

inline constexpr int kMaxTemplateChildFds = 16;

struct TemplateChildFds {
  int sources[kMaxTemplateChildFds] = {};
  int targets[kMaxTemplateChildFds] = {};
  int count = 0;
  // Highest target allowed: 2 for exec mode; entry mode allows more.
  int max_target = 2;
};

void PrepareTemplateChildAsyncSafe(const SandboxPlan& plan, const TemplateChildFds& fds);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_TEMPLATE_CHILD_H_
