// File: forkserver/child/warm_child.h
// -----------------------------------------------------------------------------
// A warm worker (Android's USAP idea): a child the fork server forks ahead
// of any request. It runs the request-independent half of the child-setup
// steps at once (reset_signals, new_session, parent_death, and close_fds:
// only 0, 1, 2 and its channel stay open), then blocks in recvmsg on its
// channel, a SOCK_SEQPACKET socketpair, using no CPU. A request comes as
// one packet: a WarmOrder (entry, argument, name, target numbers) with the
// request's descriptors (SCM_RIGHTS). The child then runs the other half
// (set_name, install_fds, close_fds) and closes the channel: from there
// the channel is exactly a cold child's setup report (EOF: set up; a
// ChildSetupFailure record: the failed step). EOF on the channel while it
// waits (the server retired it) ends it with _exit(0).
//
// Nothing of a request that came after its fork can reach it: its
// descriptor table was emptied at fork time and only its own request's
// descriptors arrive; its pidfd comes from its own clone3.
//
//   // Server, refilling its pool:
//   ASSIGN_OR_RETURN(WarmChild warm, ForkWarmChild(idle_plan));
//   if (warm.pid == 0) {            // the child, specialised
//     RunEntryAndExit(FindEntry(warm.request.entry), warm.request.arg, ...);
//   }
//   // Later, for a request:
//   RETURN_IF_ERROR(SendWarmOrder(warm.channel.get(), order, fds));
//   // warm.channel is now the child's setup report.

#ifndef FORKSERVER_FORKSERVER_CHILD_WARM_CHILD_H_
#define FORKSERVER_FORKSERVER_CHILD_WARM_CHILD_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "forkserver/child/child_setup.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

// The largest order a warm child takes (its receive buffer, static: never
// touched in the server, and only as far as the order reaches in the
// child). Bigger ones are refused by SendWarmOrder; the server forks cold.
inline constexpr size_t kMaxWarmOrderBytes = 72 * 1024;

// What a request tells a warm child. Views: valid during SendWarmOrder.
struct WarmOrder {
  absl::string_view entry;
  absl::string_view arg;
  // comm (truncated to 15 bytes); empty: the entry's name.
  absl::string_view name;
  // Where each descriptor sent with the order goes in the child.
  absl::Span<const int> target_fds;
};

// In the child, after its second half of setup: the order's entry and
// argument, pointing into its receive buffer.
struct WarmRequest {
  absl::string_view entry;
  absl::string_view arg;
};

struct WarmChild {
  // Parent: the child's pid, pidfd (from its clone3) and the server's end
  // of its channel (O_CLOEXEC, O_NONBLOCK). Child: pid 0 and `request`.
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd channel;
  WarmRequest request;
};

// Forks a warm child through ForkChild (clone3 with a pidfd) with
// `idle_plan`'s first half: its session, parent-death signal and name
// (fd_count must be 0; report_fd and keep_report_fd are set here). Returns
// in the parent at once; in the child only once a request has specialised
// it (a child whose setup fails, or whose channel reaches EOF, _exit()s).
// ForkChild's errors.
absl::StatusOr<WarmChild> ForkWarmChild(ChildSetupPlan idle_plan);

// Parent: sends `order` and `fds` (one per target) to a waiting warm child,
// without blocking. UNAVAILABLE when the child is gone (its end closed: it
// died while idle), RESOURCE_EXHAUSTED when the channel cannot take the
// order now, INVALID_ARGUMENT for an order larger than kMaxWarmOrderBytes
// or with more than kMaxChildFds descriptors. Nothing was sent on error.
absl::Status SendWarmOrder(int channel, const WarmOrder& order,
                           absl::Span<const int> fds);

namespace warm_internal {

// The order's packet: this header, then the entry's bytes, then the
// argument's; the descriptors ride along (SCM_RIGHTS), one per target.
struct WarmOrderHeader {
  uint32_t magic;
  uint32_t entry_size;
  uint32_t arg_size;
  int32_t fd_count;
  char name[16];
  int32_t target_fds[kMaxChildFds];
};
inline constexpr uint32_t kWarmOrderMagic = 0x5741524d;  // "WARM"
static_assert(std::is_trivially_copyable_v<WarmOrderHeader>);

}  // namespace warm_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_CHILD_WARM_CHILD_H_
