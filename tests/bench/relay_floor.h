// File: tests/bench/relay_floor.h
// -----------------------------------------------------------------------------
// The floor under a start through any fork server with warm workers, in
// the same run as the real thing (warm_worker_benchmark): bare processes,
// raw syscalls, no protocol, no validation, no bookkeeping.
//
//   RelayRequestToRunning: the client passes a pipe's write end (SCM_RIGHTS
//     over SOCK_SEQPACKET) to a relay process, which passes it on to a
//     fresh pre-forked worker blocked on its own channel; the worker writes
//     its CLOCK_MONOTONIC there. Each sample follows a round trip with the
//     relay (as a warm sample follows the status request that found the
//     pool full), answered once the next worker is forked.
//   RelayStartJoin: the client asks the relay to run its pre-forked child;
//     the relay wakes it, the child _exits, the relay reaps it and sends the
//     status back, then forks the next one (after the reply, and the client
//     waits until it is forked, untimed: the server's warm pool is full at
//     every sample of that case, share served warm 1.00).
//
// Both fork their processes at the call and kill and reap them before
// returning; the children run only async-signal-safe code. An empty result
// means a setup step failed.

#ifndef FORKSERVER_TESTS_BENCH_RELAY_FLOOR_H_
#define FORKSERVER_TESTS_BENCH_RELAY_FLOOR_H_

#include <vector>

#include "absl/time/time.h"

namespace forkserver {
namespace bench {

std::vector<absl::Duration> RelayRequestToRunning(absl::Duration budget);
std::vector<absl::Duration> RelayStartJoin(absl::Duration budget);

}  // namespace bench
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_BENCH_RELAY_FLOOR_H_
