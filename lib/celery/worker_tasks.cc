// One message's life in the worker: receive, hold until eta, run on the
// pool, record, settle (worker.h).

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/celery/log.h"
#include "lib/celery/task_registry.h"
#include "lib/celery/worker.h"

namespace forkserver {
namespace celery {

using nlohmann::json;

namespace {

std::string Name(const TaskMessage& m) {
  return absl::StrCat("Task ", m.task.empty() ? "?" : m.task, "[", m.id, "]");
}

std::optional<absl::Duration> Positive(std::optional<absl::Duration> d) {
  if (d && *d > absl::ZeroDuration()) return d;
  return std::nullopt;
}

}  // namespace

bool Worker::IsRevoked(const std::string& id) const {
  return revoked_.contains(id);
}

void Worker::Receive(std::string raw) {
  TaskMessage m = ParseTaskMessage(std::move(raw));
  if (m.delivery_tag.empty()) {
    // Not recorded as unacked (nothing to ack or restore by): say so.
    Log(LogLevel::kError, "Rejected a message without a delivery tag: ",
        m.raw.substr(0, 500));
    return;
  }
  Log(LogLevel::kDebug, "Received ", Name(m));
  const std::string tag = m.delivery_tag;
  if (Admit(std::move(m))) Submit(tag);
}

bool Worker::Admit(TaskMessage m) {
  absl::MutexLock lock(&mu_);
  const std::string tag = m.delivery_tag;
  if (held_.count(tag) > 0) {
    // The same delivery twice (a restore raced with us): one is enough.
    Log(LogLevel::kWarning, Name(m), " delivered again while held; ignored");
    return false;
  }
  const CeleryTaskEntry* entry = m.error.ok() ? FindCeleryTask(m.task) : nullptr;
  Held& held = held_[tag];
  held.received = absl::Now();
  held.late = entry != nullptr && entry->options.acks_late.has_value()
                  ? *entry->options.acks_late
                  : options_.acks_late;
  held.message = std::move(m);
  const TaskMessage& msg = held.message;
  if (!msg.error.ok()) {
    Log(LogLevel::kError, "Rejected an invalid task message ", Name(msg), ": ",
        msg.error.message());
    if (msg.id.empty()) {
      PutBack(held, BrokerOp::kAck);  // no id to store a result under
    } else {
      Finish(held, TaskOutcome::Failure("InvalidTaskError", "celery.exceptions",
                                        json::array({std::string(msg.error.message())}),
                                        ""));
    }
    return false;
  }
  if (IsRevoked(msg.id)) {
    Finish(held, TaskOutcome::Revoked("revoked"));
    return false;
  }
  if (msg.expires && *msg.expires <= absl::Now()) {
    Finish(held, TaskOutcome::Revoked("expired"));
    return false;
  }
  if (entry == nullptr) {
    Log(LogLevel::kError, "Received unregistered task of type '", msg.task,
        "'. The message has been ignored and discarded.");
    Finish(held, TaskOutcome::Failure("NotRegistered", "celery.exceptions",
                                      json::array({msg.task}), ""));
    return false;
  }
  if (msg.eta && *msg.eta > absl::Now()) {
    held.state = State::kEta;
    etas_.insert({*msg.eta, tag});
    return false;
  }
  held.state = State::kQueued;
  return true;
}

void Worker::Submit(const std::string& tag) {
  std::string request;
  CallOptions call;
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(tag);
    if (it == held_.end() || it->second.state == State::kDone) return;
    Held& held = it->second;
    const TaskMessage& m = held.message;
    // Revoked or expired while it waited for its eta.
    if (IsRevoked(m.id)) return Finish(held, TaskOutcome::Revoked("revoked"));
    if (m.expires && *m.expires <= absl::Now()) {
      return Finish(held, TaskOutcome::Revoked("expired"));
    }
    held.state = State::kQueued;
    json r = {{"task", m.task}, {"args", m.args}, {"kwargs", m.kwargs}};
    // Checked again where it runs: it may wait in the pool past its expiry.
    if (m.expires) r["expires"] = absl::ToUnixMicros(*m.expires);
    request = DumpJson(r);
    call.timeout = Positive(m.hard_time_limit ? m.hard_time_limit : options_.time_limit);
    call.soft_timeout =
        Positive(m.soft_time_limit ? m.soft_time_limit : options_.soft_time_limit);
  }
  call.accept_callback = [this, tag](pid_t pid, absl::Time) { OnAccepted(tag, pid); };
  call.callback = [this, tag](const std::string& value) { OnResult(tag, value); };
  call.error_callback = [this, tag](const absl::Status& e) { OnError(tag, e); };
  absl::StatusOr<AsyncResult> job =
      pool_->ApplyAsyncBytes(kExecuteTask, std::move(request), std::move(call));
  absl::MutexLock lock(&mu_);
  auto it = held_.find(tag);
  if (it == held_.end()) return;
  if (!job.ok()) {
    // The pool is closing (shutdown) or closed itself (restart storm):
    // the message is not ours to fail, it goes back.
    Log(LogLevel::kError, Name(it->second.message), " not started: ", job.status().message());
    return PutBack(it->second, BrokerOp::kRestore);
  }
  if (it->second.state == State::kQueued) it->second.job = *job;
}

void Worker::OnAccepted(const std::string& tag, pid_t pid) {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(tag);
  if (it == held_.end() || it->second.state == State::kDone) return;
  Held& held = it->second;
  held.state = State::kRunning;
  held.pid = pid;
  held.started = absl::Now();
  if (!held.late && !held.acked) {
    held.acked = true;
    writer_->Submit({tag, "", "", BrokerOp::kAck, /*finishes=*/false});
  }
}

void Worker::OnResult(const std::string& tag, const std::string& value) {
  TaskOutcome outcome;
  if (absl::Status s = TaskOutcome::FromJson(value, &outcome); !s.ok()) {
    outcome = TaskOutcome::Failure("WorkerLostError", "billiard.exceptions",
                                   json::array({std::string(s.message())}), "");
  }
  absl::MutexLock lock(&mu_);
  auto it = held_.find(tag);
  if (it == held_.end() || it->second.state == State::kDone) return;
  Finish(it->second, outcome);
}

void Worker::OnError(const std::string& tag, const absl::Status& error) {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(tag);
  if (it == held_.end() || it->second.state == State::kDone) return;
  Held& held = it->second;
  const std::optional<PoolError> kind = GetPoolError(error);
  const bool revoked = IsRevoked(held.message.id) || terminating_.count(tag) > 0;
  if (revoked && (kind == PoolError::kTerminated || kind == PoolError::kCancelled)) {
    return Finish(held, TaskOutcome::Revoked("terminated"));
  }
  if (kind == PoolError::kCancelled) return PutBack(held, BrokerOp::kRestore);
  if (kind == PoolError::kWorkerLost && held.late && options_.reject_on_worker_lost) {
    Log(LogLevel::kWarning, Name(held.message), " requeued: ", error.message());
    return PutBack(held, BrokerOp::kRequeue);
  }
  if (cold_ && (kind == PoolError::kTerminated || kind == PoolError::kWorkerLost)) {
    // Cold shutdown: under acks_late the message goes back untouched;
    // under early ack it was acked when it started, so it is recorded.
    if (!held.acked) return PutBack(held, BrokerOp::kRestore);
    return Finish(held, TaskOutcome::Failure(
                            "WorkerLostError", "billiard.exceptions",
                            json::array({"cold shutdown while the task ran"}), ""));
  }
  if (kind == PoolError::kRestartFreqExceeded && !held.acked) {
    return PutBack(held, BrokerOp::kRestore);
  }
  Finish(held, OutcomeFromPoolError(error, held.message.hard_time_limit
                                               ? held.message.hard_time_limit
                                               : options_.time_limit));
}

void Worker::Finish(Held& held, const TaskOutcome& outcome) {
  const TaskMessage& m = held.message;
  const absl::Duration took =
      held.started == absl::Time() ? absl::ZeroDuration() : absl::Now() - held.started;
  if (outcome.ok()) {
    ++succeeded_;
    Log(LogLevel::kInfo, Name(m), " succeeded in ",
        absl::StrFormat("%.6fs", absl::ToDoubleSeconds(took)), ": ",
        outcome.Summary().substr(0, 200));
  } else {
    ++failed_;
    Log(outcome.state == "REVOKED" ? LogLevel::kWarning : LogLevel::kError, Name(m),
        outcome.state == "REVOKED" ? " revoked: " : " raised: ", outcome.Summary());
  }
  WriteOp op{m.delivery_tag, "", "", BrokerOp::kNone, /*finishes=*/true};
  if (!(outcome.ok() && m.ignore_result) && !m.id.empty()) {
    op.result_key = absl::StrCat("celery-task-meta-", m.id);
    op.meta = ResultMeta(m, outcome, absl::Now());
  }
  if (!held.acked) {
    op.broker = BrokerOp::kAck;
    held.acked = true;
  }
  held.state = State::kDone;
  writer_->Submit(std::move(op));
}

void Worker::PutBack(Held& held, BrokerOp how) {
  held.state = State::kDone;
  held.acked = true;
  writer_->Submit({held.message.delivery_tag, "", "", how, /*finishes=*/true});
}

void Worker::OnFinished(const std::string& tag) {
  absl::MutexLock lock(&mu_);
  held_.erase(tag);
  terminating_.erase(tag);
}

}  // namespace celery
}  // namespace forkserver
