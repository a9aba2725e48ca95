// PoolCore's jobs: submitting (validation, chunking, serialising once
// outside the lock, put-lock slots), cancelling, and recording results.

#include "lib/pool/pool_core.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "lib/pool/pool_options_check.h"
#include "lib/pool/pool_worker.h"
#include "lib/registry/registry.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"

namespace forkserver {

namespace {

std::atomic<JobId> next_job_id{1};

}  // namespace

void PoolCore::FailDispatch(Dispatch& dispatch, const absl::Status& status) {
  SetItems(*dispatch.job, dispatch.first_item,
           internal::ItemOutcomes::AllFailed(dispatch.item_count, status));
}

void PoolCore::SetItems(internal::JobState& job, size_t first,
                        internal::ItemOutcomes outcomes) {
  bool became_ready = false;
  std::vector<std::string> values;
  absl::Status failure;
  {
    absl::MutexLock lock(&job.mutex);
    absl::Status failed = job.items.Set(
        first, std::move(outcomes),
        job.kind == internal::JobKind::kImapUnordered ? &job.completed_order
                                                      : nullptr);
    if (!failed.ok() && job.failure.ok()) job.failure = std::move(failed);
    const bool complete = job.items.done_count() == job.items.size();
    const bool map_failed =
        job.kind == internal::JobKind::kMap && !job.failure.ok();
    if (!job.ready && (complete || map_failed)) {
      job.ready = true;
      became_ready = true;
      failure = job.failure;
      const bool wants_values =
          (job.kind == internal::JobKind::kApply && job.options.callback) ||
          (job.kind == internal::JobKind::kMap && job.options.map_callback);
      if (failure.ok() && wants_values) {
        values.reserve(job.items.size());
        for (size_t i = 0; i < job.items.size(); ++i) {
          values.emplace_back(job.items.value(i));
        }
      }
    }
  }
  if (!became_ready) return;
  if (job.holds_slot) {
    job.holds_slot = false;
    --slots_in_use_;
  }
  if (options_.on_timeout_cancel) {
    Deliver([callback = options_.on_timeout_cancel, id = job.id] {
      callback(id);
    });
  }
  const CallOptions& call = job.options;
  if (!failure.ok()) {
    if (call.error_callback) {
      Deliver([callback = call.error_callback, failure] { callback(failure); });
    }
  } else if (job.kind == internal::JobKind::kApply && call.callback) {
    Deliver([callback = call.callback, value = std::move(values[0])] {
      callback(value);
    });
  } else if (job.kind == internal::JobKind::kMap && call.map_callback) {
    Deliver([callback = call.map_callback, values = std::move(values)] {
      callback(values);
    });
  }
}

// Splits a job's arguments into chunks and serialises each chunk's
// ToWorker message once, here, outside the pool's lock; the arguments move
// in. A chunk of items of one size travels as one block (PackedItems):
// no per-item field to write, parse or allocate on either side.
std::vector<PoolCore::Dispatch> PoolCore::PrepareDispatches(
    const std::shared_ptr<internal::JobState>& job, internal::JobArgs args) {
  const size_t n = args.size();
  size_t chunk = 1;
  const internal::JobKind kind = job->kind;
  if (kind == internal::JobKind::kMap) {
    const size_t workers = static_cast<size_t>(processes());
    chunk = job->options.chunksize.has_value()
                ? static_cast<size_t>(*job->options.chunksize)
                : std::max<size_t>(1, (n + 4 * workers - 1) / (4 * workers));
  } else if (kind != internal::JobKind::kApply) {
    chunk = static_cast<size_t>(job->options.chunksize.value_or(1));
  }
  std::vector<Dispatch> prepared;
  prepared.reserve(n / chunk + 1);
  for (size_t first = 0; first < n;) {
    Dispatch dispatch;
    dispatch.id = ++next_dispatch_;
    dispatch.job = job;
    dispatch.first_item = first;
    // `chunk` items, fewer when their bytes pass the message budget (so a
    // chunk always fits a frame); at least one.
    size_t count = 0, bytes = 0;
    bool same_size = true;
    while (count < chunk && first + count < n &&
           (count == 0 ||
            bytes + args.item_size(first + count) <= kPoolMessageBudgetBytes)) {
      same_size = same_size && args.item_size(first + count) == args.item_size(first);
      bytes += args.item_size(first + count);
      ++count;
    }
    dispatch.item_count = count;
    google::protobuf::Arena arena;  // One allocation for a chunk's items.
    wire::ToWorker& message =
        *google::protobuf::Arena::CreateMessage<wire::ToWorker>(&arena);
    wire::PoolTask& task = *message.mutable_task();
    task.set_dispatch(dispatch.id);
    task.set_job(job->id);
    task.set_task(job->task);
    if (args.packed) {
      const size_t size = args.block.item_size;
      wire::PackedItems& packed = *task.mutable_packed_args();
      packed.set_data(args.block.data.data() + first * size, count * size);
      packed.set_item_size(static_cast<uint32_t>(size));
      packed.set_count(static_cast<uint32_t>(count));
    } else if (same_size && count > 1) {
      wire::PackedItems& packed = *task.mutable_packed_args();
      std::string& data = *packed.mutable_data();
      data.reserve(bytes);
      for (size_t i = first; i < first + count; ++i) data += args.items[i];
      packed.set_item_size(static_cast<uint32_t>(args.item_size(first)));
      packed.set_count(static_cast<uint32_t>(count));
    } else {
      for (size_t i = first; i < first + count; ++i) {
        task.add_args(std::move(args.items[i]));
      }
    }
    message.SerializeToString(&dispatch.payload);
    prepared.push_back(std::move(dispatch));
    first += count;
  }
  return prepared;
}

// Put locks: waits (under mu_) until a slot is free or the pool stops.
absl::Status PoolCore::TakeSlot(internal::JobState& job) {
  if (!SlotFreeOrStopped() && OnHelperThread()) {
    // Only this thread frees slots: waiting here would wait for ever.
    return absl::FailedPreconditionError(
        "no put-lock slot is free, and a pool callback cannot wait for "
        "one (it runs on the thread that frees them); submit with "
        "CallOptions::wait_for_slot = false");
  }
  if (!options_.threads) {
    // Nobody else would free a slot while we block: drive the events.
    while (!SlotFreeOrStopped()) {
      mu_.Unlock();
      ProcessEvents(absl::Milliseconds(10));
      mu_.Lock();
    }
  } else {
    mu_.Await(absl::Condition(this, &PoolCore::SlotFreeOrStopped));
  }
  if (state_ != State::kRun) return NotRunning();
  ++slots_in_use_;
  job.holds_slot = true;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<internal::JobState>> PoolCore::Submit(
    internal::JobKind kind, absl::string_view task,
    internal::JobArgs args, CallOptions options) {
  if (FindTask(task) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no task named '", task, "' is registered (FORKSERVER_REGISTER_TASK)"));
  }
  RETURN_IF_ERROR(internal::ValidateCallOptions(options));
  if (args.packed) {
    RETURN_IF_ERROR(internal::CheckBlock(args.block.data.size(),
                                         args.block.item_size,
                                         args.block.count));
  }
  if (args.size() >= std::numeric_limits<uint32_t>::max() - 1) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a job of ", args.size(), " items is more than a pool job holds"));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args.item_size(i) > kMaxPoolItemBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "argument ", i, " of ", args.item_size(i),
          " bytes exceeds the pool channel's cap of ", kMaxPoolItemBytes,
          " bytes per item"));
    }
    if (args.packed) break;  // One size for all.
  }
  auto job = std::make_shared<internal::JobState>();
  job->id = next_job_id++;
  job->kind = kind;
  job->task = std::string(task);
  job->options = std::move(options);
  job->driver = weak_from_this();
  {
    absl::MutexLock lock(&job->mutex);
    job->items.Reset(args.size());
  }
  const size_t n = args.size();
  std::vector<Dispatch> prepared = PrepareDispatches(job, std::move(args));
  job->chunks = static_cast<int>(prepared.size());

  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kRun) return NotRunning();
    if (job->options.wait_for_slot.value_or(options_.putlocks)) {
      RETURN_IF_ERROR(TakeSlot(*job));
    }
    for (Dispatch& dispatch : prepared) {
      queue_.push_back(dispatch.id);
      dispatches_.emplace(dispatch.id, std::move(dispatch));
    }
    if (n == 0) SetItems(*job, 0, {});
    DispatchQueued();
  }
  RunDeliveries();
  return job;
}

absl::Status PoolCore::Cancel(internal::JobState& job) {
  absl::MutexLock lock(&mu_);
  bool any_sent = false, any_running = false;
  std::vector<int64_t> queued;
  for (auto& [id, dispatch] : dispatches_) {
    if (dispatch.job.get() != &job) continue;
    if (dispatch.accepted) any_running = true;
    else if (dispatch.worker != 0) any_sent = true;
    else queued.push_back(id);
  }
  if (job.Ready()) return absl::FailedPreconditionError("job is already done");
  if (any_running || (any_sent && !options_.synack)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job.id, any_running ? " is running" : " was sent to a worker",
        "; only a job that has not started can be cancelled (with synack, "
        "also one that was sent but not started)"));
  }
  {
    absl::MutexLock job_lock(&job.mutex);
    job.cancelled = true;
  }
  for (int64_t id : queued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), id));
    FailDispatch(dispatches_.at(id), CancelledJobError(job.id));
    dispatches_.erase(id);
  }
  if (any_sent) {
    // synack: the worker's acknowledgement will be answered with a NACK.
    for (auto& [id, dispatch] : dispatches_) {
      if (dispatch.job.get() == &job) FailDispatch(dispatch, CancelledJobError(job.id));
    }
  }
  return absl::OkStatus();
}

}  // namespace forkserver
