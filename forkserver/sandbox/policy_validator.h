// File: forkserver/sandbox/policy_validator.h
// -----------------------------------------------------------------------------
// Checks a Policy for what it asks that cannot mean what it says. Every
// error is INVALID_ARGUMENT naming the field, e.g.
//   "filesystem.mounts: needs namespaces.mount"
//   "seccomp.rules[2].syscall: unknown syscall \"fooo\""
//   "namespaces.user.uid_map: needs namespaces.user.enabled"
// Whether the host can do it is a separate question (host_probe.h).

#ifndef FORKSERVER_SANDBOX_POLICY_VALIDATOR_H_
#define FORKSERVER_SANDBOX_POLICY_VALIDATOR_H_

#include "absl/status/status.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {

absl::Status ValidatePolicy(const Policy& policy);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_POLICY_VALIDATOR_H_
