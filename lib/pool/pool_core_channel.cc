// PoolCore's side of the per-worker channels: writing frames, reading and
// decoding what workers send (up, accepted, done, exiting).

#include "lib/pool/pool_core.h"

#include <signal.h>
#include <sys/epoll.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "lib/base/monotonic_clock.h"
#include "lib/base/status_macros.h"
#include "lib/pool/pool_event_tags.h"

namespace forkserver {

using internal::kChannel;
using internal::Watch;

void PoolCore::Send(Worker& worker, const wire::ToWorker& message) {
  (void)worker.writer.Append(message.SerializeAsString());
}

void PoolCore::FlushWorker(Worker& worker) {
  absl::Status flushed = worker.writer.Flush(worker.channel.get());
  if (!flushed.ok()) return;  // It died; its sentinel will tell.
  const bool want_write = !worker.writer.empty();
  if (want_write != worker.want_write) {
    Watch(epoll_.get(), worker.channel.get(), kChannel, worker.serial,
          want_write ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
    worker.want_write = want_write;
  }
}

void PoolCore::ReadChannel(Worker& worker) {
  while (true) {
    absl::StatusOr<size_t> read = worker.reader.Fill(worker.channel.get());
    // Would block, EOF, or the socket had no more for now.
    if (!read.ok() || *read == 0 || worker.reader.drained()) break;
  }
  // An arena per batch: a result of thousands of values is one allocation.
  google::protobuf::Arena arena;
  while (true) {
    absl::StatusOr<std::optional<absl::string_view>> frame = worker.reader.Next();
    auto* message = google::protobuf::Arena::CreateMessage<wire::ToParent>(&arena);
    if (!frame.ok() ||
        (frame->has_value() &&
         !message->ParseFromArray((*frame)->data(),
                                  static_cast<int>((*frame)->size())))) {
      Log(absl::StrCat("PoolWorker-", worker.index, " pid:",
                       worker.process->pid(),
                       " sent an undecodable message; killing it"));
      KillGroup(worker, SIGKILL);
      return;
    }
    if (!frame->has_value()) return;
    HandleMessage(worker, *message);
  }
}

void PoolCore::HandleMessage(Worker& worker, wire::ToParent& message) {
  switch (message.msg_case()) {
    case wire::ToParent::kUp:
      worker.up = true;
      limiter_.WorkerStarted();
      break;
    case wire::ToParent::kAccepted:
      HandleAccepted(worker, message.accepted());
      break;
    case wire::ToParent::kDone:
      HandleDone(worker, *message.mutable_done());
      break;
    case wire::ToParent::kExiting:
      worker.exit_reason = message.exiting().reason();
      break;
    default:
      break;
  }
}

// Forgets `dispatch` at `worker`, whatever became of it.
void PoolCore::DropOutstanding(Worker& worker, int64_t dispatch) {
  auto pos = std::find(worker.outstanding.begin(), worker.outstanding.end(),
                       dispatch);
  if (pos != worker.outstanding.end()) worker.outstanding.erase(pos);
}

void PoolCore::HandleAccepted(Worker& worker,
                              const wire::TaskAccepted& accepted) {
  auto it = dispatches_.find(accepted.dispatch());
  if (it == dispatches_.end() || it->second.worker != worker.serial) {
    // Not (or no longer) this worker's: nothing to start the clock for.
    DropOutstanding(worker, accepted.dispatch());
    return;
  }
  Dispatch& dispatch = it->second;
  internal::JobState& job = *dispatch.job;
  // A worker that accepts a job has started fine (billiard resets the
  // restart count on every ACK).
  limiter_.Reset();
  bool cancelled;
  {
    absl::MutexLock lock(&job.mutex);
    cancelled = job.cancelled;
  }
  if (options_.synack) {
    wire::ToWorker answer;
    answer.mutable_synack()->set_dispatch(dispatch.id);
    answer.mutable_synack()->set_accept(!cancelled);
    Send(worker, answer);
    FlushWorker(worker);
    if (cancelled) {
      DropOutstanding(worker, dispatch.id);
      dispatches_.erase(it);
      return;
    }
  }
  dispatch.accepted = true;
  dispatch.accepted_at = MonotonicNow();
  std::string().swap(dispatch.payload);
  dispatch.soft = job.options.soft_timeout.has_value()
                      ? job.options.soft_timeout
                      : options_.soft_timeout;
  dispatch.hard = job.options.timeout.has_value() ? job.options.timeout
                                                  : options_.timeout;
  if (dispatch.soft.has_value() || dispatch.hard.has_value()) {
    timed_.insert(dispatch.id);
  }
  const pid_t pid = worker.process->pid();
  {
    absl::MutexLock lock(&job.mutex);
    ++job.chunks_accepted;
    job.worker_pids.push_back(pid);
  }
  if (options_.on_timeout_set) {
    Deliver([callback = options_.on_timeout_set, id = job.id,
             soft = dispatch.soft, hard = dispatch.hard] {
      callback(id, soft, hard);
    });
  }
  if (job.options.accept_callback) {
    const absl::Time when = absl::FromUnixMicros(accepted.accepted_unix_usec());
    Deliver([callback = job.options.accept_callback, pid, when] {
      callback(pid, when);
    });
  }
}

namespace {

// The outcomes in a TaskDone, items done.first() onwards of the dispatch
// (the values move out of the message).
internal::ItemOutcomes DoneOutcomes(wire::TaskDone& done) {
  internal::ItemOutcomes outcomes;
  if (done.has_packed_values()) {
    wire::PackedItems& packed = *done.mutable_packed_values();
    outcomes.packed = true;
    outcomes.block.data = std::move(*packed.mutable_data());
    outcomes.block.item_size = packed.item_size();
    outcomes.block.count = packed.count();
  } else {
    outcomes.values.reserve(done.values_size());
    for (std::string& value : *done.mutable_values()) {
      outcomes.values.push_back(std::move(value));
    }
  }
  const size_t count = outcomes.count();
  for (const wire::ItemError& item : done.errors()) {
    const int64_t at = int64_t{item.index()} - done.first();
    if (at < 0 || static_cast<size_t>(at) >= count) continue;
    const wire::TaskError& error = item.error();
    outcomes.errors.emplace_back(
        static_cast<size_t>(at),
        error.type() == "SoftTimeLimitExceeded"
            ? SoftTimeLimitExceededError()
            : TaskErrorStatus(static_cast<absl::StatusCode>(error.code()),
                              TaskErrorInfo{error.type(), error.message(),
                                            error.context()}));
  }
  return outcomes;
}

// The number of items a TaskDone reports, or an error if its packed
// values are malformed.
absl::StatusOr<size_t> DoneCount(const wire::TaskDone& done) {
  if (!done.has_packed_values()) return static_cast<size_t>(done.values_size());
  const wire::PackedItems& packed = done.packed_values();
  if (done.values_size() != 0) {
    return absl::InvalidArgumentError("both values and packed values");
  }
  RETURN_IF_ERROR(internal::CheckBlock(packed.data().size(), packed.item_size(),
                                       packed.count()));
  return static_cast<size_t>(packed.count());
}

}  // namespace

void PoolCore::HandleDone(Worker& worker, wire::TaskDone& done) {
  auto it = dispatches_.find(done.dispatch());
  if (it == dispatches_.end() || it->second.worker != worker.serial) {
    if (!done.more()) DropOutstanding(worker, done.dispatch());
    return;
  }
  Dispatch& dispatch = it->second;
  absl::StatusOr<size_t> count = DoneCount(done);
  if (!count.ok()) {
    Log(absl::StrCat("PoolWorker-", worker.index, " pid:",
                     worker.process->pid(), " sent malformed results (",
                     count.status().message(), "); killing it"));
    KillGroup(worker, SIGKILL);
    return;
  }
  if (done.first() < 0 ||
      static_cast<size_t>(done.first()) + *count > dispatch.item_count) {
    Log(absl::StrCat("PoolWorker-", worker.index, " pid:",
                     worker.process->pid(),
                     " sent results for items it was not given; killing it"));
    KillGroup(worker, SIGKILL);
    return;
  }
  if (!dispatch.hard_fired) {
    SetItems(*dispatch.job, dispatch.first_item + done.first(),
             DoneOutcomes(done));
  }
  // A large result comes in parts: the dispatch ends with the last one.
  if (done.more()) return;
  const absl::Time now = MonotonicNow();
  if (dispatch.accepted && dispatch.item_count > 0) {
    const double per_item =
        absl::ToDoubleMicroseconds(now - dispatch.accepted_at) /
        static_cast<double>(dispatch.item_count);
    worker.average_item_usec = worker.average_item_usec < 0
                                   ? per_item
                                   : 0.8 * worker.average_item_usec + 0.2 * per_item;
  }
  DropOutstanding(worker, dispatch.id);
  if (worker.terminated_dispatch == dispatch.id) {
    // It finished before the signal ended it: a normal result.
    worker.terminated_dispatch = 0;
    worker.terminate_signal = 0;
  }
  timed_.erase(dispatch.id);
  dispatches_.erase(it);
}

}  // namespace forkserver
