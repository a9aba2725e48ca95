// File: forkserver/children.h
// -----------------------------------------------------------------------------
// The fork server's children: the table of every child it forked and has
// not reaped yet, keyed by pid, and what the server does to them.
//
// - Spawn() carries out a validated SpawnRequest: it looks up the entry,
//   maps a memfd argument (forkserver/memfd_args.h), builds the
//   ChildSetupPlan, checks the server is single-threaded and forks through
//   forkserver/child/spawner.h. In the child (entry mode) it never returns.
//   In the parent the child is in the table, its setup-report pipe
//   non-blocking and watched as EventSource::kReport.
// - ReadSetupReport() collects that report; once it is complete (EOF or a
//   whole failure record) the pipe is unwatched and closed and the verdict
//   returned. Answering the client is the connection's job
//   (forkserver/connection.h).
// - Disown(), TerminateAll(), KillRemaining(): signals, always through the
//   child's pidfd (never a pid that may have been reused).
// - The warm workers (forkserver/warm_pool.h) are the table's too: Spawn()
//   hands a request a warm child can serve to one (which then is an
//   ordinary entry like any other), RefillWarm() forks the next, and
//   TerminateAll()/KillRemaining()/OnlySurvivorsLeft() retire, kill and
//   wait for them at shutdown. They are not counted in size() while idle.
//
// Reaping (wait4) and erasing entries is forkserver/reaper.h's job.
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_CHILDREN_H_
#define FORKSERVER_FORKSERVER_CHILDREN_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/child/spawner.h"
#include "forkserver/event_set.h"
#include "forkserver/warm_pool.h"
#include "lib/base/unique_fd.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {

struct Child {
  UniqueFd pidfd;
  // Read end of the setup report, while setup is pending, and what it
  // delivered so far.
  UniqueFd report;
  std::string report_bytes;
  // A launch whose whole report came with it (VforkExecChild): judged by
  // the first ReadSetupReport, with no pipe to read.
  bool report_complete = false;
  // The connection to report to; -1 once it is gone.
  int connection = -1;
  bool kill_on_disconnect = false;
  bool survive_server = false;
  // The client asked for its process group to be signalled: when it ends,
  // the reaper SIGKILLs the group before reaping it (forkserver/reaper.h).
  bool kill_group_on_exit = false;
  // Its client got the "spawned" reply (the pid and pidfd).
  bool announced = false;
  // A sandboxed child: its template reaps it, so its template, not this
  // table, signals its group (TemplateCache::SignalGroup).
  bool reaped_by_template = false;
};

// A complete setup report: OK, or the status naming the failed step, with
// the raw record (step and errno) for the error reply.
struct SetupReport {
  absl::Status result;
  ChildSetupFailure failure{};
};

// OK for a signal a client may ask for (1..64), else INVALID_ARGUMENT.
absl::Status CheckSignalNumber(int sig);

class ChildTable {
 public:
  // Keeps `warm_workers` warm children ready (0: none).
  ChildTable(EventSet& events, int warm_workers)
      : events_(events), warm_(warm_workers) {}
  ChildTable(const ChildTable&) = delete;
  ChildTable& operator=(const ChildTable&) = delete;

  // Forks the child `request` asks for; `fds` are the descriptors that came
  // with it (the child's, then the argument memfd with arg_in_memfd).
  // Returns its pid; the entry's `connection` is left at -1 for the caller
  // to set. Errors: NOT_FOUND for an unknown entry, INVALID_ARGUMENT for a
  // bad memfd, FAILED_PRECONDITION when the server has more than one
  // thread, and ForkChild()'s errors (RESOURCE_EXHAUSTED, ...). A request
  // WarmPool::Serves() goes to a warm child when one is ready (no fork,
  // the same checks first); otherwise it is forked cold.
  absl::StatusOr<pid_t> Spawn(const wire::SpawnRequest& request,
                              std::vector<UniqueFd>& fds);

  // The entry of `pid`, or nullptr when it is not (or no longer) ours.
  Child* Find(pid_t pid);
  // The entry of `pid`, which must be in the table.
  Child& at(pid_t pid) { return children_.at(pid); }
  void Erase(pid_t pid) { children_.erase(pid); }
  // A sandboxed child a template started (forkserver/templates.h): in the
  // table for signals and disowning; its exit comes from the template.
  void Adopt(pid_t pid, UniqueFd pidfd, bool kill_on_disconnect);

  // The child whose setup-report pipe is `report_fd`, if it is pending.
  std::optional<pid_t> PendingReport(int report_fd) const;
  // Reads what `pid`'s report pipe holds. nullopt while the report is
  // incomplete (what arrived is kept for the next call); otherwise the
  // verdict, with the pipe unwatched and closed.
  std::optional<SetupReport> ReadSetupReport(pid_t pid);

  // The connection `fd` that `pid` reports to is gone: the child has no
  // reporter any more, and a kill_on_disconnect child is SIGKILLed
  // (daemon semantics). So is one whose client never got its "spawned"
  // reply (it left first, or the reply could not be sent), unless it was
  // asked to survive the server: nobody would know of it. Logged. Nothing
  // when `pid` reports elsewhere or is gone.
  void Disown(pid_t pid, int fd);
  // Sends `sig` to child `pid`'s process group (children lead their own:
  // setsid) and marks it kill_group_on_exit. Safe against pid reuse: the
  // child is in the table, so not reaped, so the group id is still its.
  // OK when it is gone already (its exit notice is on the way);
  // INVALID_ARGUMENT for a signal outside 1..64.
  absl::Status SignalGroup(pid_t pid, int sig);

  // SIGTERMs every child not asked to survive the server.
  void TerminateAll();
  // True when every child left was asked to survive the server.
  bool OnlySurvivorsLeft() const;
  // SIGKILLs every child not asked to survive the server. Reaping them
  // (and telling their clients) is the reaper's job, as for any exit.
  void KillRemaining();
  // The pids of the children not asked to survive the server.
  std::vector<pid_t> NonSurvivors() const;

  // The warm pool: when its next child is due (WarmPool::NextRefill), and
  // forking it (refused, and retried later, when the server is not
  // single-threaded). In the child RefillWarm() never returns.
  absl::Time NextWarmRefill() const { return warm_.NextRefill(); }
  void RefillWarm();
  // A reaped pid that was a warm child's (idle, retired or found gone).
  bool ReapedWarm(pid_t pid) { return warm_.Reaped(pid); }
  const WarmPool& warm() const { return warm_; }
  // Some child's setup report is still to come.
  bool SetupsPending() const { return !pending_reports_.empty(); }

  size_t size() const { return children_.size(); }
  int64_t spawned_total() const { return spawned_total_; }
  // Processes reaped that were not in the table (orphaned descendants).
  void CountStranger() { ++strangers_reaped_; }
  int64_t strangers_reaped() const { return strangers_reaped_; }

 private:
  // Puts a freshly forked child in the table and watches its report.
  // A complete report (report_complete) is kept to be judged at once.
  void Record(ForkedChild& forked, const wire::SpawnRequest& request);

  EventSet& events_;
  absl::flat_hash_map<pid_t, Child> children_;
  // Report pipe -> child, while its setup is pending.
  absl::flat_hash_map<int, pid_t> pending_reports_;
  WarmPool warm_;
  int64_t spawned_total_ = 0;
  int64_t strangers_reaped_ = 0;
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_CHILDREN_H_
