// File: forkserver/child/sandbox/namespaces.h
// async-signal-safe: runs after fork (WriteIdMapsAsyncSafe also runs in
// the parent, for a child it holds at its release pipe).
//
// Namespace steps that are not mounts: id maps, the release handshake,
// hostname, loopback. Namespaces themselves are created by clone3 flags
// (see forkserver/sandbox/launcher.h); nothing here unshares.

#ifndef FORKSERVER_CHILD_SANDBOX_NAMESPACES_H_
#define FORKSERVER_CHILD_SANDBOX_NAMESPACES_H_

#include <sys/types.h>

namespace forkserver {
namespace sandbox_child {

// Writes "deny" to /proc/PID/setgroups (when deny_setgroups; needed before
// gid_map when unprivileged), then uid_map, then gid_map (either may be
// null). pid 0: "self". Returns 0 or an errno.
int WriteIdMapsAsyncSafe(pid_t pid, const char* uid_map, const char* gid_map,
                         bool deny_setgroups);

// Blocks until one byte arrives on fd, then closes it. Returns 0, or an
// errno (EPIPE when the parent closed without releasing).
int WaitForReleaseAsyncSafe(int fd);

// sethostname in the child's UTS namespace. Returns 0 or an errno.
int SetHostnameAsyncSafe(const char* name, int length);

// Sets IFF_UP on "lo" with ioctl(SIOCSIFFLAGS) on an AF_INET socket, as
// bubblewrap's loopback_setup does. Returns 0 or an errno.
int BringUpLoopbackAsyncSafe();

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_NAMESPACES_H_
