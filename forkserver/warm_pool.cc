#include "forkserver/warm_pool.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/child/warm_child.h"
#include "forkserver/fd_budget.h"
#include "forkserver/server_log.h"
#include "lib/base/monotonic_clock.h"
#include "lib/registry/entry_runner.h"
#include "lib/registry/registry.h"

namespace forkserver {
namespace server_internal {
namespace {

void KillThroughPidfd(int pidfd) {
  ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

// What a warm child is before its request: what every cold child gets
// that does not depend on the request (ChildTable's BasePlan without
// survive_server, which warm children never serve).
ChildSetupPlan IdlePlan() {
  ChildSetupPlan plan;
  plan.new_session = true;
  plan.parent_death_signal = SIGKILL;
  plan.expected_parent = ::getpid();
  plan.restore_nofile_soft = FdLimitForChildren();
  static constexpr char kIdleName[] = "forkserver-warm";
  static_assert(sizeof(kIdleName) <= sizeof(plan.name));
  __builtin_memcpy(plan.name, kIdleName, sizeof(kIdleName));
  return plan;
}

}  // namespace

bool WarmPool::Serves(const wire::SpawnRequest& request) {
  return request.kind() == wire::SPAWN_KIND_ENTRY && !request.arg_in_memfd() &&
         !request.survive_server() && !request.has_sandbox() &&
         request.sandbox_text().empty();
}

std::optional<TakenWarmChild> WarmPool::Take(
    const wire::SpawnRequest& request, const std::vector<UniqueFd>& fds) {
  std::vector<int> sources;
  sources.reserve(fds.size());
  for (const UniqueFd& fd : fds) sources.push_back(fd.get());
  WarmOrder order;
  order.entry = request.entry();
  order.arg = request.arg();
  order.name = request.name();
  order.target_fds = request.child_fds();
  while (!idle_.empty()) {
    Idle& child = idle_.back();
    absl::Status sent = SendWarmOrder(child.channel.get(), order, sources);
    if (sent.ok()) {
      TakenWarmChild taken{child.pid, std::move(child.pidfd),
                           std::move(child.channel)};
      idle_.pop_back();
      ++hits_;
      quick_deaths_ = 0;
      return taken;
    }
    if (!absl::IsUnavailable(sent)) {
      // The child is fine, the order did not fit now: cold, this once.
      Log(absl::StrCat("warm child ", child.pid, " not used: ",
                       sent.ToString()));
      return std::nullopt;
    }
    // Died while idle (its reaping is on the way): never handed out.
    KillThroughPidfd(child.pidfd.get());
    leaving_[child.pid] = Leaving{std::move(child.pidfd), child.forked, true};
    idle_.pop_back();
  }
  return std::nullopt;
}

absl::Time WarmPool::NextRefill() const {
  if (retired_ || disabled_ || static_cast<int>(idle_.size()) >= target_) {
    return absl::InfiniteFuture();
  }
  return backoff_until_;
}

void WarmPool::RefillOne(const absl::Status& can_fork) {
  absl::StatusOr<WarmChild> warm =
      can_fork.ok() ? ForkWarmChild(IdlePlan())
                    : absl::StatusOr<WarmChild>(can_fork);
  if (!warm.ok()) {
    Log(absl::StrCat("could not fork a warm child (retrying in ",
                     absl::FormatDuration(backoff_),
                     "): ", warm.status().ToString()));
    backoff_until_ = MonotonicNow() + backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxRefillBackoff);
    return;
  }
  backoff_ = kRefillBackoff;
  if (warm->pid == 0) {
    // The child, specialised by its request (warm_child.h): a single-
    // threaded copy of the server, as a cold child; ordinary C++ is fine.
    // The server looked the entry up before it sent the order.
    DiscardInheritedStdioBuffers();
    EntryFunction entry = FindEntry(warm->request.entry);
    if (entry == nullptr) ::_exit(kChildSetupFailedExitCode);
    RunEntryAndExit(entry, warm->request.arg, warm->request.entry);
  }
  idle_.push_back(Idle{warm->pid, std::move(warm->pidfd),
                       std::move(warm->channel), MonotonicNow()});
}

bool WarmPool::Reaped(pid_t pid) {
  if (auto it = leaving_.find(pid); it != leaving_.end()) {
    if (it->second.died_idle) CountIdleDeath(it->second.forked);
    leaving_.erase(it);
    return true;
  }
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if (it->pid != pid) continue;
    CountIdleDeath(it->forked);
    idle_.erase(it);
    return true;
  }
  return false;
}

void WarmPool::CountIdleDeath(absl::Time forked) {
  ++idle_deaths_;
  if (MonotonicNow() - forked >= kQuickDeath) {
    quick_deaths_ = 0;
    return;
  }
  if (++quick_deaths_ >= kMaxQuickDeaths && !disabled_) {
    disabled_ = true;
    Log(absl::StrCat("warm workers disabled: ", quick_deaths_,
                     " in a row died idle within ",
                     absl::FormatDuration(kQuickDeath),
                     " of their fork; every spawn is forked cold"));
  }
}

void WarmPool::Retire() {
  retired_ = true;
  // EOF on its channel: the child _exit(0)s; reaped as any child.
  for (Idle& child : idle_) {
    leaving_[child.pid] = Leaving{std::move(child.pidfd), child.forked, false};
  }
  idle_.clear();
}

void WarmPool::KillAll() {
  for (Idle& child : idle_) KillThroughPidfd(child.pidfd.get());
  for (auto& [pid, child] : leaving_) KillThroughPidfd(child.pidfd.get());
}

std::vector<pid_t> WarmPool::Pids() const {
  std::vector<pid_t> pids;
  for (const Idle& child : idle_) pids.push_back(child.pid);
  for (const auto& [pid, child] : leaving_) pids.push_back(pid);
  return pids;
}

void WarmPool::FillStatus(wire::StatusReply& status) const {
  status.set_warm_target(target_);
  status.set_warm_disabled(disabled_);
  status.set_warm_ready(static_cast<int>(idle_.size()));
  status.set_warm_hits(hits_);
  status.set_warm_idle_deaths(idle_deaths_);
  for (const Idle& child : idle_) status.add_warm_pids(child.pid);
}

}  // namespace server_internal
}  // namespace forkserver
