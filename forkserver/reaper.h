// File: forkserver/reaper.h
// -----------------------------------------------------------------------------
// Reaping the fork server's children. Called on every SIGCHLD the signalfd
// delivers, and once at start-up (a child may have exited before the
// signalfd existed).
//
// Every exited child is collected with wait4(WNOHANG) until none is left.
// For one of ours: a setup report still pending is read first (it is
// complete once the child is gone); then the client it reports to, if any,
// gets an ExitNotice (exit code, or signal and core flag; user and system
// CPU time; peak RSS) and its connection is closed; then it leaves the
// table. A pid that is not in the table (the server is a child subreaper,
// PR_SET_CHILD_SUBREAPER: orphaned descendants of its children come to it)
// is reaped without a word and counted (ChildTable::CountStranger);
// children's pids are unique among the living, so it cannot be one of
// ours. Returns how many such strangers this call reaped.
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_REAPER_H_
#define FORKSERVER_FORKSERVER_REAPER_H_

#include "forkserver/children.h"
#include "forkserver/connection.h"

namespace forkserver {
namespace server_internal {

int ReapChildren(ChildTable& children, ConnectionTable& connections);

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_REAPER_H_
