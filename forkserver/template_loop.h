// File: forkserver/template_loop.h
// -----------------------------------------------------------------------------
// The loop a sandbox template runs (forkserver/template_main.h has the
// contract): requests in, children out, exits reported. Runs only in the
// template process; never returns (_exit on EOF or a broken socket).
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_TEMPLATE_LOOP_H_
#define FORKSERVER_FORKSERVER_TEMPLATE_LOOP_H_

#include "forkserver/sandbox/compiled_sandbox.h"

namespace forkserver {
namespace server_internal {

// Per-child plan of `sandbox` (kPerChild) as the template's children
// follow it: a per-child pid + mount namespace when the policy has pid
// and mount namespaces, then a fresh /proc and /tmp where the view has
// them (the tmpfs with the policy's size and mode).
uint64_t PerChildCloneFlags(const sandbox::CompiledSandbox& sandbox);

[[noreturn]] void ServeTemplate(int socket, const sandbox::CompiledSandbox& sandbox);

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_TEMPLATE_LOOP_H_
