// File: forkserver/warm_pool.h
// -----------------------------------------------------------------------------
// The fork server's warm workers: up to `target` children forked ahead of
// any request (forkserver/child/warm_child.h), each blocked on its own
// channel, so that an entry-mode spawn costs a message instead of a fork.
//
// - Serves() says which requests a warm child can take: entry mode, the
//   argument inline (not in a memfd), not asked to survive the server.
//   Everything else (exec mode, sandboxed, survive_server, a large
//   argument) is forked cold, unchanged.
// - Take() hands the request to an idle child: the order and the
//   request's descriptors go over its channel, which then is the child's
//   setup report, exactly as a cold child's pipe. A child found gone (it
//   died while idle) is never handed out: it waits to be reaped, the next
//   one is tried, and with none left the caller forks cold.
// - RefillOne() forks one more child. The server calls it from its loop
//   when nothing else is ready (after the reply, off the critical path).
//   A failed fork is retried after kRefillBackoff, doubling up to
//   kMaxRefillBackoff while it keeps failing; after
//   kMaxQuickDeaths children in a row died idle within kQuickDeath of
//   their fork, the pool stops refilling (logged) and every request is
//   cold.
// - Reaped() takes back a reaped pid that was the pool's (idle, retired or
//   found gone); the reaper counts anything else as a stranger.
// - Retire() (shutdown): no more refills, and every idle child's channel
//   is closed: it sees EOF and _exit(0)s. KillAll() SIGKILLs what is left
//   through the pidfds. empty() once every one of them is reaped.
//
// Costs the server two descriptors per child (channel, pidfd); see
// forkserver/fd_budget.h. Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_WARM_POOL_H_
#define FORKSERVER_FORKSERVER_WARM_POOL_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/base/unique_fd.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {

inline constexpr absl::Duration kRefillBackoff = absl::Milliseconds(100);
inline constexpr absl::Duration kMaxRefillBackoff = absl::Seconds(10);
inline constexpr absl::Duration kQuickDeath = absl::Seconds(1);
inline constexpr int kMaxQuickDeaths = 5;

// A warm child handed a request: from here on it is an ordinary child whose
// setup report is `report` (its channel).
struct TakenWarmChild {
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd report;
};

class WarmPool {
 public:
  explicit WarmPool(int target) : target_(target < 0 ? 0 : target) {}
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  static bool Serves(const wire::SpawnRequest& request);

  // Gives `request` (which Serves()) with its descriptors to an idle child.
  // nullopt: none could take it; fork cold.
  std::optional<TakenWarmChild> Take(const wire::SpawnRequest& request,
                                     const std::vector<UniqueFd>& fds);

  // When the next RefillOne() is due: InfiniteFuture() when the pool is
  // full, retired or disabled; a later time while backing off.
  absl::Time NextRefill() const;
  // Forks one child, when `can_fork` (the server is single-threaded);
  // otherwise logs it and backs off. In the child, never returns: it runs
  // its entry once specialised.
  void RefillOne(const absl::Status& can_fork);

  bool Reaped(pid_t pid);

  void Retire();
  void KillAll();
  bool empty() const { return idle_.empty() && leaving_.empty(); }
  // Every unreaped child of the pool.
  std::vector<pid_t> Pids() const;

  void FillStatus(wire::StatusReply& status) const;

 private:
  struct Idle {
    pid_t pid;
    UniqueFd pidfd;
    UniqueFd channel;
    absl::Time forked;
  };
  // A child gone from the pool but not yet reaped (retired, or found gone
  // by Take): its pidfd, and whether it counts as having died idle.
  struct Leaving {
    UniqueFd pidfd;
    absl::Time forked;
    bool died_idle;
  };

  void CountIdleDeath(absl::Time forked);

  const int target_;
  std::vector<Idle> idle_;
  absl::flat_hash_map<pid_t, Leaving> leaving_;
  bool retired_ = false;
  bool disabled_ = false;
  absl::Time backoff_until_ = absl::InfinitePast();
  absl::Duration backoff_ = kRefillBackoff;
  int quick_deaths_ = 0;
  int64_t hits_ = 0;
  int64_t idle_deaths_ = 0;
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_WARM_POOL_H_
