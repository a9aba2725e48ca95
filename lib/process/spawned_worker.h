// File: lib/process/spawned_worker.h
// -----------------------------------------------------------------------------
// Start method "spawn": the parent writes a wire::WorkerLaunch into a sealed
// memfd, forks, and execs /proc/self/exe with
//   argv: <argv[0]> --forkserver-worker-fd=N -- <the application's argv>
//   env:  the parent's, plus FORKED_BY_MULTIPROCESSING=1 and
//         MP_MAIN_FILE=<main executable>
// Init() in the new process recognises that and calls SpawnedWorkerMain().

#ifndef FORKSERVER_LIB_PROCESS_SPAWNED_WORKER_H_
#define FORKSERVER_LIB_PROCESS_SPAWNED_WORKER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/unique_fd.h"
#include "proto/launch.pb.h"

namespace forkserver {

inline constexpr char kWorkerFdFlag[] = "--forkserver-worker-fd=";

// Reads the launch message from `fd`, runs the preloads (once: this is a
// fresh process), then the entry point, and exits with its return value.
// Exits 1 with a message on stderr if the launch message is unreadable,
// the entry unknown or a preload failed. Never returns.
[[noreturn]] void SpawnedWorkerMain(int fd);

// Parent side: a sealed, O_CLOEXEC memfd holding `launch`.
absl::StatusOr<UniqueFd> WriteLaunchMemfd(const wire::WorkerLaunch& launch);

// F_SEAL_FUTURE_WRITE (Linux 5.1), which older headers lack.
inline constexpr int kSealFutureWrite = 0x0010;

}  // namespace forkserver

#endif  // FORKSERVER_LIB_PROCESS_SPAWNED_WORKER_H_
