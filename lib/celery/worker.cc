#include "lib/celery/worker.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/celery/log.h"
#include "lib/celery/task_registry.h"

namespace forkserver {
namespace celery {
namespace {

// FetchBatch size cap: one script call should stay short for Redis.
constexpr int kMaxBatch = 100;
constexpr int kUnlimitedPrefetch = 10000;
constexpr absl::Duration kIdleWait = absl::Milliseconds(200);
// How long a warm or cold shutdown waits for the writer when the broker
// is down before giving up (what it leaves is redelivered, see
// result_writer.h).
constexpr absl::Duration kWriterDrain = absl::Seconds(30);

}  // namespace

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)),
      broker_client_(options_.broker, "broker"),
      broker_(broker_client_, options_.queues) {}

Worker::~Worker() {
  // Run() not called, or it failed: end the pool first, so that no
  // callback reaches the writer after it is gone.
  if (pool_) {
    (void)pool_->Terminate();
    (void)pool_->Join();
  }
  if (control_) control_->Stop();
  if (writer_) writer_->Stop(absl::Now());
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(WorkerOptions options) {
  if (options.queues.empty()) return absl::InvalidArgumentError("no queues");
  if (options.prefetch_multiplier < 0) {
    return absl::InvalidArgumentError("prefetch multiplier must be >= 0");
  }
  std::unique_ptr<Worker> w(new Worker(std::move(options)));
  PoolOptions pool;
  pool.processes = w->options_.concurrency;
  pool.maxtasksperchild = w->options_.max_tasks_per_child;
  pool.max_memory_per_child_kib = w->options_.max_memory_per_child_kib;
  pool.lost_worker_timeout = w->options_.lost_worker_timeout;
  pool.log = [](absl::string_view line) { Log(LogLevel::kWarning, line); };
  absl::StatusOr<std::unique_ptr<Pool>> created = Pool::Create(std::move(pool));
  if (!created.ok()) return created.status();
  w->pool_ = *std::move(created);
  const int processes = w->pool_->processes();
  w->prefetch_limit_ = w->options_.prefetch_multiplier == 0
                           ? kUnlimitedPrefetch
                           : processes * w->options_.prefetch_multiplier;
  Worker* self = w.get();
  w->writer_ = std::make_unique<ResultWriter>(
      w->options_.backend, w->options_.broker, w->options_.result_expires,
      [self](const std::string& tag) { self->OnFinished(tag); });
  if (w->options_.enable_control) {
    w->control_ = std::make_unique<ControlServer>(
        w->options_.broker, w->options_.hostname, w->ControlHandlers());
  }
  return w;
}

void Worker::RequestShutdown(bool cold) {
  const bool again = stop_consuming_.exchange(true);
  if (cold || again) {
    if (!cold_.exchange(true)) {
      Log(LogLevel::kWarning, "worker: Cold shutdown (MainProcess)");
    }
  } else {
    Log(LogLevel::kWarning, "worker: Warm shutdown (MainProcess)");
  }
}

absl::Status Worker::Run() {
  Log(LogLevel::kWarning, options_.hostname, " ready. broker ",
      options_.broker.display, ", backend ", options_.backend.display,
      ", queues [", absl::StrJoin(options_.queues, ", "), "], concurrency ",
      pool_->processes(), ", prefetch ", prefetch_limit_, ", acks_late ",
      options_.acks_late ? "on" : "off", ", tasks [",
      absl::StrJoin(CeleryTaskNames(), ", "), "]");
  writer_->Start();
  if (control_) control_->Start();
  absl::Status consumed = ConsumeUntilShutdown();
  Shutdown();
  return consumed;
}

int Worker::Capacity() const {
  absl::MutexLock lock(&mu_);
  return CapacityLocked();
}

bool Worker::CanFetchLocked() const {
  return CapacityLocked() > 0 || stop_consuming_;
}

int Worker::CapacityLocked() const {
  int counted = 0;
  for (const auto& [tag, held] : held_) {
    // Celery does not count eta messages against the prefetch limit, nor
    // (under early ack) the running ones, whose slot the ack freed.
    if (held.state == State::kEta) continue;
    if (held.state == State::kRunning && held.acked) continue;
    ++counted;
  }
  return prefetch_limit_ - counted;
}

absl::Status Worker::ConsumeUntilShutdown() {
  auto stopping = [this] { return stop_consuming_.load(); };
  while (!stopping()) {
    DispatchDue();
    Maintain();
    const int capacity = Capacity();
    if (capacity <= 0) {
      // Full: wait until a message is settled (OnFinished), without
      // polling, so that acks_late with a small prefetch stays fast.
      absl::MutexLock lock(&mu_);
      absl::Duration wait = absl::Milliseconds(50);
      if (!etas_.empty()) wait = std::min(wait, etas_.begin()->first - absl::Now());
      mu_.AwaitWithTimeout(absl::Condition(this, &Worker::CanFetchLocked), wait);
      continue;
    }
    absl::Status fetched = FetchSome(capacity);
    if (absl::IsUnavailable(fetched)) {
      Log(LogLevel::kError, "consumer: ", fetched.message());
      (void)broker_client_.ConnectWithBackoff(stopping);
    } else if (!fetched.ok()) {
      Log(LogLevel::kError, "consumer: ", fetched.message());
      absl::SleepFor(absl::Seconds(1));
    }
  }
  return absl::OkStatus();
}

absl::Status Worker::FetchSome(int capacity) {
  absl::StatusOr<std::vector<std::string>> batch =
      broker_.FetchBatch(std::min(capacity, kMaxBatch));
  if (!batch.ok()) return batch.status();
  for (std::string& raw : *batch) Receive(std::move(raw));
  if (!batch->empty()) return absl::OkStatus();
  // Nothing waiting: block until something is, unless an eta is due
  // sooner. Short, so that other queues and priorities (not waited on)
  // and the restore interval are served too.
  absl::Duration wait = kIdleWait;
  {
    absl::MutexLock lock(&mu_);
    if (!etas_.empty()) wait = std::min(wait, etas_.begin()->first - absl::Now());
  }
  if (wait < absl::Milliseconds(10)) {
    absl::SleepFor(std::max(wait, absl::Milliseconds(1)));
    return absl::OkStatus();
  }
  return broker_.WaitForMessages(wait);
}

void Worker::DispatchDue() {
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    while (!etas_.empty() && etas_.begin()->first <= now) {
      due.push_back(etas_.begin()->second);
      etas_.erase(etas_.begin());
    }
  }
  for (const std::string& tag : due) Submit(tag);
}

// Every restore_interval: refresh what we hold, restore what others left.
void Worker::Maintain() {
  const absl::Time now = absl::Now();
  if (now - last_maintain_ < options_.restore_interval) return;
  last_maintain_ = now;
  std::vector<std::string> tags;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [tag, held] : held_) {
      if (!held.acked) tags.push_back(tag);
    }
  }
  if (absl::Status s = broker_.Touch(tags); !s.ok()) {
    Log(LogLevel::kError, "refreshing unacked messages: ", s.message());
    return;
  }
  absl::StatusOr<int> restored =
      broker_.RestoreVisible(options_.visibility_timeout, 1000);
  if (!restored.ok()) {
    Log(LogLevel::kError, "restoring unacked messages: ", restored.status().message());
  } else if (*restored > 0) {
    Log(LogLevel::kWarning, "Restored ", *restored,
        " unacknowledged message(s) older than the visibility timeout");
  }
}

void Worker::Shutdown() {
  // Messages not started go back to their queue.
  std::vector<AsyncResult> queued;
  {
    absl::MutexLock lock(&mu_);
    etas_.clear();
    for (auto& [tag, held] : held_) {
      if (held.state == State::kEta) PutBack(held, BrokerOp::kRestore);
      if (held.state == State::kQueued && held.job) queued.push_back(*held.job);
    }
  }
  for (const AsyncResult& job : queued) (void)job.Cancel();  // -> OnError
  pool_->Close();
  // Warm: wait for the running ones, unless a cold shutdown comes.
  auto running = [this] {
    absl::MutexLock lock(&mu_);
    for (const auto& [tag, held] : held_) {
      if (held.state == State::kQueued || held.state == State::kRunning) return true;
    }
    return false;
  };
  while (running() && !cold_) absl::SleepFor(absl::Milliseconds(10));
  if (cold_) (void)pool_->Terminate();
  if (absl::Status joined = pool_->Join(); !joined.ok()) {
    Log(LogLevel::kError, "joining the pool: ", joined.message());
  }
  if (control_) control_->Stop();
  writer_->Stop(absl::Now() + kWriterDrain);
  absl::MutexLock lock(&mu_);
  if (!held_.empty()) {
    Log(LogLevel::kError, held_.size(),
        " message(s) not settled at exit; they stay in `unacked` and are "
        "restored after the visibility timeout");
  }
}

std::string Worker::StatusLine() const {
  absl::MutexLock lock(&mu_);
  int eta = 0, queued = 0, running = 0;
  for (const auto& [tag, held] : held_) {
    eta += held.state == State::kEta;
    queued += held.state == State::kQueued;
    running += held.state == State::kRunning;
  }
  std::vector<std::string> pids;
  for (const WorkerInfo& w : pool_->Workers()) pids.push_back(absl::StrCat(w.pid));
  return absl::StrCat(options_.hostname, ": held ", held_.size(), " (eta ", eta,
                      ", queued ", queued, ", running ", running, "), succeeded ",
                      succeeded_, ", failed ", failed_, ", writes pending ",
                      writer_->pending(), ", pool [", absl::StrJoin(pids, " "), "]");
}

}  // namespace celery
}  // namespace forkserver
