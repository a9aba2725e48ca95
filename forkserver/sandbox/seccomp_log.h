// File: forkserver/sandbox/seccomp_log.h
// -----------------------------------------------------------------------------
// Names the syscall that got a process killed by seccomp. A SIGSYS death
// from SECCOMP_RET_KILL_PROCESS carries no syscall number to the parent
// (and a SIGSYS handler cannot survive execve), but the kernel logs every
// kill action (kernel.seccomp.actions_logged) as an audit record:
//   audit: type=1326 ... pid=18306 comm="ls" ... arch=c000003e syscall=332
// We read it back from /dev/kmsg, matching the host pid and a timestamp
// no earlier than the launch (so a reused pid cannot match an old record).
// Needs CAP_SYSLOG or kernel.dmesg_restrict=0; otherwise the name is
// unknown and the caller says so.

#ifndef FORKSERVER_SANDBOX_SECCOMP_LOG_H_
#define FORKSERVER_SANDBOX_SECCOMP_LOG_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace forkserver {
namespace sandbox {

// CLOCK_MONOTONIC now, in microseconds (the kernel log's clock, close
// enough for "not before the launch" with a small margin).
uint64_t MonotonicMicros();

// "unshare", or "syscall 1234 (arch c000003e)" for one libseccomp cannot
// name. NOT_FOUND when no record matches, PERMISSION_DENIED when the log
// cannot be read.
absl::StatusOr<std::string> FindSeccompKill(pid_t host_pid, uint64_t not_before_us);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_SECCOMP_LOG_H_
