// File: forkserver/sandbox/seccomp_compiler.h
// -----------------------------------------------------------------------------
// Compiles a validated Seccomp policy to a BPF program, once, in the parent
// (libseccomp allocates, so it never runs after fork). libseccomp adds the
// architecture check: a syscall from a foreign ABI (ia32, x32) kills the
// process. Debian 12's libseccomp 2.5.4 has no seccomp_export_bpf_mem, so
// the program goes through a memfd (seccomp_export_bpf) and is read back.

#ifndef FORKSERVER_SANDBOX_SECCOMP_COMPILER_H_
#define FORKSERVER_SANDBOX_SECCOMP_COMPILER_H_

#include <linux/filter.h>

#include <vector>

#include "absl/status/statusor.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {

// INVALID_ARGUMENT for a rule libseccomp refuses, INTERNAL when export
// fails. The policy should have passed ValidatePolicy.
absl::StatusOr<std::vector<sock_filter>> CompileSeccomp(const Seccomp& policy);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_SECCOMP_COMPILER_H_
