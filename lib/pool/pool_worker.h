// File: lib/pool/pool_worker.h
// -----------------------------------------------------------------------------
// The worker side of a Pool: an entry point (kPoolWorkerEntry) that every
// pool worker runs, whatever its start method. It reads tasks from its
// channel (fd kPoolChannelFd), acknowledges each before running it, runs
// it, and sends the outcome. Internal to the library; the protocol is
// proto/pool.proto.
//
// Exit codes: 0 after a Shutdown or when the pool's end of the channel
// closes; kRecycleExitCode after maxtasksperchild tasks or once its peak
// RSS passed max_memory_per_child (its results sent first); 1 when its
// initializer failed. Signals keep their default actions (SIGTERM kills),
// except SIGUSR1 (the soft time limit: a flag the task reads, and EINTR)
// and SIGINT (ignored).

#ifndef FORKSERVER_LIB_POOL_POOL_WORKER_H_
#define FORKSERVER_LIB_POOL_POOL_WORKER_H_

#include <cstddef>

namespace forkserver {

inline constexpr char kPoolWorkerEntry[] = "forkserver::PoolWorker";
inline constexpr int kPoolChannelFd = 3;
// billiard's EX_RECYCLE.
inline constexpr int kRecycleExitCode = 155;

// How many bytes of arguments one task message carries, and of results one
// TaskDone: a map chunk bigger than this is split into several messages
// (the parent splits arguments into several dispatches, the worker streams
// results with TaskDone.more), so no chunk can outgrow a frame. One item
// may be larger, up to kMaxPoolItemBytes, and then travels alone.
inline constexpr size_t kPoolMessageBudgetBytes = size_t{32} << 20;
// One argument or one result: the frame cap less room for the message's
// own fields. Larger ones fail with RESOURCE_EXHAUSTED.
inline constexpr size_t kMaxPoolItemBytes = (size_t{256} << 20) - 4096;

namespace internal {
// Referenced by the Pool so the linker keeps the worker's registration.
const char* PoolWorkerEntryName();
}  // namespace internal

}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_WORKER_H_
