// PoolCore's dispatcher: which idle worker gets queued work, how much may
// wait at a worker, and retiring idle workers of a closing pool.

#include "lib/pool/pool_core.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"

namespace forkserver {

namespace {

// A worker gets, beyond the task it runs, about this much measured work
// queued at it: enough to keep it busy between the pool's wake-ups, little
// enough that a long task does not hold up many others.
constexpr double kPrefetchBudgetUsec = 1000;
constexpr size_t kMaxWindow = 64;

}  // namespace

size_t PoolCore::Window(const Worker& worker) const {
  if (options_.synack) return 1;
  if (worker.average_item_usec < 0) return 2;  // Not measured yet.
  const double extra =
      kPrefetchBudgetUsec / std::max(worker.average_item_usec, 1.0);
  return 1 + static_cast<size_t>(std::min<double>(extra, kMaxWindow));
}

void PoolCore::DispatchQueued() {
  if (queue_.empty()) return;
  std::vector<Worker*> candidates;
  for (auto& [serial, worker] : workers_) {
    if (!worker->retiring && !worker->exited) candidates.push_back(worker.get());
  }
  std::vector<Worker*> touched;
  while (!queue_.empty()) {
    Worker* best = nullptr;
    for (Worker* worker : candidates) {
      if (worker->outstanding.size() >= Window(*worker)) continue;
      if (best == nullptr || worker->outstanding.size() < best->outstanding.size()) {
        best = worker;
      }
    }
    if (best == nullptr) break;
    const int64_t id = queue_.front();
    queue_.pop_front();
    Dispatch& dispatch = dispatches_.at(id);
    if (absl::Status queued = best->writer.Append(dispatch.payload);
        !queued.ok()) {
      // Chunks are sized to fit a frame, so this is a bug, but the job
      // must still end: it fails with the reason instead of vanishing.
      FailDispatch(dispatch, absl::ResourceExhaustedError(absl::StrCat(
                                 "a task message of ", dispatch.payload.size(),
                                 " bytes does not fit the pool channel: ",
                                 queued.message())));
      dispatches_.erase(id);
      continue;
    }
    dispatch.worker = best->serial;
    best->outstanding.push_back(id);
    if (std::find(touched.begin(), touched.end(), best) == touched.end()) {
      touched.push_back(best);
    }
  }
  for (Worker* worker : touched) FlushWorker(*worker);
}

void PoolCore::RetireIdleWhenClosing() {
  if (state_ != State::kClose || !queue_.empty()) return;
  for (auto& [serial, worker] : workers_) {
    if (worker->retiring || !worker->outstanding.empty()) continue;
    wire::ToWorker message;
    message.mutable_shutdown();
    Send(*worker, message);
    FlushWorker(*worker);
    worker->retiring = true;
  }
}

}  // namespace forkserver
