// File: forkserver/sandbox/host_probe.h
// -----------------------------------------------------------------------------
// Asks the host whether it can create the namespaces a policy wants, by
// cloning a throw-away child with exactly those flags (the only answer
// that accounts for sysctls, LSMs, seccomp on the caller and nesting
// limits). FAILED_PRECONDITION naming the step when it cannot, e.g.
//   "sandbox step 'namespaces' not possible on this host: clone3(user pid
//    mount) failed: Operation not permitted"
// so a launch never starts with less isolation than asked. cgroups are
// probed by CgroupManager::Create.

#ifndef FORKSERVER_SANDBOX_HOST_PROBE_H_
#define FORKSERVER_SANDBOX_HOST_PROBE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace forkserver {
namespace sandbox {

absl::Status ProbeNamespaces(uint64_t clone_flags);

// The status ProbeNamespaces gives for a clone3 with `clone_flags` that
// failed with `error`: for a caller whose own clone (a template's) is the
// probe.
absl::Status NamespacesNotPossible(uint64_t clone_flags, int error);

// "user pid mount" for the namespace bits in clone_flags.
std::string DescribeNamespaceFlags(uint64_t clone_flags);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_HOST_PROBE_H_
