#include "lib/celery/result_writer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/celery/log.h"

namespace forkserver {
namespace celery {
namespace {

// KEYS: the meta key; ARGV: meta, expiry seconds (0: none).
constexpr char kStoreScript[] = R"lua(
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta.status == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
)lua";

constexpr size_t kMaxBatch = 256;

}  // namespace

ResultWriter::ResultWriter(RedisUrl backend, RedisUrl broker,
                           absl::Duration result_expires,
                           std::function<void(const std::string&)> on_finished)
    : backend_(std::move(backend), "backend"),
      broker_client_(std::move(broker), "broker"),
      broker_(broker_client_, {}),
      expires_seconds_(absl::StrCat(absl::ToInt64Seconds(result_expires))),
      on_finished_(std::move(on_finished)) {}

ResultWriter::~ResultWriter() { Stop(absl::Now()); }

void ResultWriter::Start() { thread_ = std::thread([this] { Loop(); }); }

void ResultWriter::Submit(WriteOp op) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(op));
}

size_t ResultWriter::pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void ResultWriter::Stop(absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    deadline_ = deadline;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  if (!queue_.empty()) {
    Log(LogLevel::kError, "shutting down with ", queue_.size(),
        " writes not done (broker or backend unreachable); their messages "
        "stay unacked and are redelivered after the visibility timeout");
  }
}

void ResultWriter::Loop() {
  for (;;) {
    std::vector<WriteOp> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100));
      if (queue_.empty()) {
        if (stopping_) return;
        continue;
      }
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    absl::Status written = Write(batch);
    auto give_up = [this] {
      absl::MutexLock lock(&mu_);
      return stopping_ && absl::Now() >= deadline_;
    };
    while (absl::IsUnavailable(written) && !give_up()) {
      Log(LogLevel::kError, written.message());
      (void)backend_.ConnectWithBackoff(give_up);
      (void)broker_client_.ConnectWithBackoff(give_up);
      written = Write(batch);
    }
    if (!written.ok()) {
      // Put it back for Stop() to report; nothing is silently dropped.
      absl::MutexLock lock(&mu_);
      queue_.insert(queue_.begin(), batch.begin(), batch.end());
      if (stopping_ && absl::Now() >= deadline_) return;
      continue;
    }
    for (const WriteOp& op : batch) {
      if (op.finishes) on_finished_(op.tag);
    }
  }
}

absl::Status ResultWriter::Write(const std::vector<WriteOp>& batch) {
  if (absl::Status s = WriteResults(batch); !s.ok()) return s;
  return WriteBrokerOps(batch);
}

absl::Status ResultWriter::WriteResults(const std::vector<WriteOp>& batch) {
  std::vector<RedisCommand> cmds;
  for (const WriteOp& op : batch) {
    if (op.result_key.empty()) continue;
    cmds.push_back({"EVAL", kStoreScript, "1", op.result_key, op.meta,
                    expires_seconds_});
  }
  if (cmds.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<RedisReply>> replies = backend_.Pipeline(cmds);
  if (!replies.ok()) return replies.status();
  for (const RedisReply& reply : *replies) {
    if (reply.is_error()) {
      // Not retried (it would fail the same way), but said loudly. (A
      // server not ready yet, LOADING or BUSY, is UNAVAILABLE instead, and
      // retried: see redis_client.h.)
      Log(LogLevel::kError, "storing a result failed: ", reply.str);
    }
  }
  return absl::OkStatus();
}

absl::Status ResultWriter::WriteBrokerOps(const std::vector<WriteOp>& batch) {
  // Acks go in one pipeline; restores (rare) one by one, in order.
  std::vector<RedisCommand> acks;
  std::vector<const std::string*> acked;  // the tag of each command
  for (const WriteOp& op : batch) {
    if (op.broker != BrokerOp::kAck) continue;
    KombuBroker::AppendAck(op.tag, acks);
    while (acked.size() < acks.size()) acked.push_back(&op.tag);
  }
  if (!acks.empty()) {
    absl::StatusOr<std::vector<RedisReply>> replies =
        broker_client_.Pipeline(acks);
    if (!replies.ok()) return replies.status();
    // Not retried (it would fail the same way), but said: the message
    // stays in `unacked` and runs again after the visibility timeout.
    for (size_t i = 0; i < replies->size(); ++i) {
      if ((*replies)[i].is_error()) {
        Log(LogLevel::kError, "acking ", *acked[i], " failed: ", (*replies)[i].str,
            "; it stays unacked and is redelivered after the visibility timeout");
      }
    }
  }
  for (const WriteOp& op : batch) {
    if (op.broker != BrokerOp::kRestore && op.broker != BrokerOp::kRequeue) {
      continue;
    }
    absl::Status s = broker_.Restore(op.tag, op.broker == BrokerOp::kRequeue);
    if (absl::IsUnavailable(s)) return s;
    if (!s.ok()) Log(LogLevel::kError, "restoring ", op.tag, ": ", s.message());
  }
  return absl::OkStatus();
}

}  // namespace celery
}  // namespace forkserver
