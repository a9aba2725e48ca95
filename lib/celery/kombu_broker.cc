#include "lib/celery/kombu_broker.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/celery/log.h"
#include "lib/celery/message.h"
#include "nlohmann/json.hpp"

namespace forkserver {
namespace celery {
namespace {

using nlohmann::json;

constexpr char kSep[] = "\x06\x16";
constexpr int kPrioritySteps[] = {0, 3, 6, 9};

// KEYS: unacked, unacked_index, the batch key, the previous batch key
// (deleted: its reply arrived), queue keys...; ARGV: max, now. Pops and records atomically, and notes the batch's tags under the
// batch key (10 minutes), so a reply lost with the connection can be
// recovered. cjson only *reads* the payload: the stored text is the popped
// text verbatim (re-encoding could turn [] into {}).
constexpr char kFetchScript[] = R"lua(
local out, tags = {}, {}
local max = tonumber(ARGV[1])
redis.call('DEL', KEYS[4])
for i = 5, #KEYS do
  while #out < max do
    local m = redis.call('RPOP', KEYS[i])
    if not m then break end
    local ok, msg = pcall(cjson.decode, m)
    if ok and type(msg) == 'table' and type(msg.properties) == 'table' and
       type(msg.properties.delivery_tag) == 'string' then
      local info = msg.properties.delivery_info
      local ex, rk = '', KEYS[i]
      if type(info) == 'table' then
        if type(info.exchange) == 'string' then ex = info.exchange end
        if type(info.routing_key) == 'string' then rk = info.routing_key end
      end
      local tag = msg.properties.delivery_tag
      redis.call('ZADD', KEYS[2], ARGV[2], tag)
      redis.call('HSET', KEYS[1], tag,
                 '[' .. m .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
      tags[#tags + 1] = tag
    end
    out[#out + 1] = m
  end
end
if #tags > 0 then redis.call('SET', KEYS[3], cjson.encode(tags), 'EX', 600) end
return out
)lua";

// KEYS: unacked, unacked_index; ARGV: tag, expected value, push command,
// payload, queues... Moves the message only if it is still the one we read.
constexpr char kRestoreScript[] = R"lua(
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 5, #ARGV do redis.call(ARGV[3], ARGV[i], ARGV[4]) end
return 1
)lua";

constexpr char kUnlockScript[] = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

absl::Status ReplyError(const RedisReply& reply, absl::string_view what) {
  if (!reply.is_error()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", reply.str));
}

// A pipeline's first error reply: a pipeline that "went through" may still
// have had commands refused, and an ack or a refresh that did not happen
// must not pass for one that did.
absl::Status PipelineError(const absl::StatusOr<std::vector<RedisReply>>& replies,
                           absl::string_view what) {
  if (!replies.ok()) return replies.status();
  for (const RedisReply& reply : *replies) {
    if (absl::Status s = ReplyError(reply, what); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

std::string UnixSeconds(absl::Time t) {
  return absl::StrFormat("%.6f", absl::ToDoubleSeconds(t - absl::UnixEpoch()));
}

KombuBroker::KombuBroker(RedisClient& client, std::vector<std::string> queues)
    : client_(client) {
  for (int pri : kPrioritySteps) {
    for (const std::string& q : queues) {
      keys_.push_back(pri == 0 ? q : absl::StrCat(q, kSep, pri));
    }
  }
}

absl::StatusOr<std::vector<std::string>> KombuBroker::FetchBatch(int max) {
  if (!lost_batch_.empty()) return RecoverBatch();
  static thread_local absl::BitGen gen;
  const std::string batch_key =
      absl::StrCat("forkserver.fetch.", absl::Uniform<uint64_t>(gen));
  RedisCommand cmd = {"EVAL", kFetchScript, absl::StrCat(keys_.size() + 4),
                      kUnacked, kUnackedIndex, batch_key,
                      previous_batch_.empty() ? batch_key : previous_batch_};
  cmd.insert(cmd.end(), keys_.begin(), keys_.end());
  cmd.push_back(absl::StrCat(max));
  cmd.push_back(UnixSeconds(absl::Now()));
  absl::StatusOr<RedisReply> reply = client_.Command(cmd);
  if (!reply.ok()) {
    // The script may have run and its reply died with the connection.
    if (absl::IsUnavailable(reply.status())) lost_batch_ = batch_key;
    return reply.status();
  }
  if (absl::Status s = ReplyError(*reply, "fetch script"); !s.ok()) return s;
  std::vector<std::string> out;
  for (RedisReply& e : reply->elements) out.push_back(std::move(e.str));
  previous_batch_ = out.empty() ? "" : batch_key;
  return out;
}

absl::StatusOr<std::vector<std::string>> KombuBroker::RecoverBatch() {
  absl::StatusOr<RedisReply> noted = client_.Command({"GET", lost_batch_});
  if (!noted.ok()) return noted.status();
  // An error is not "no batch": keep lost_batch_ and try again next fetch,
  // or the messages the script took would stay unacked with nobody on them.
  if (absl::Status s = ReplyError(*noted, "reading a lost fetch's batch"); !s.ok()) {
    return s;
  }
  std::vector<std::string> out;
  const json tags = noted->is_nil() ? json::array()
                                    : json::parse(noted->str, nullptr, false);
  for (const json& tag : tags.is_array() ? tags : json::array()) {
    if (!tag.is_string()) continue;
    absl::StatusOr<RedisReply> stored =
        client_.Command({"HGET", kUnacked, tag.get<std::string>()});
    if (!stored.ok()) return stored.status();
    if (absl::Status s = ReplyError(*stored, "reading a lost fetch's message"); !s.ok()) {
      return s;
    }
    const json entry = stored->is_nil() ? json() : json::parse(stored->str, nullptr, false);
    // Gone: acked or restored (by the visibility timeout) meanwhile.
    if (entry.is_array() && !entry.empty()) out.push_back(DumpJson(entry[0]));
  }
  if (!out.empty()) {
    Log(LogLevel::kWarning, "Recovered ", out.size(),
        " message(s) taken just before the broker connection was lost");
  }
  (void)client_.Command({"DEL", lost_batch_});
  lost_batch_.clear();
  return out;
}

absl::Status KombuBroker::Record(const std::string& payload) {
  const TaskMessage m = ParseTaskMessage(payload);
  if (m.delivery_tag.empty()) return absl::OkStatus();  // caller rejects it
  const json value = json::array({json::parse(payload, nullptr, false),
                                  m.exchange, m.routing_key});
  absl::StatusOr<std::vector<RedisReply>> replies = client_.Pipeline(
      {{"ZADD", kUnackedIndex, UnixSeconds(absl::Now()), m.delivery_tag},
       {"HSET", kUnacked, m.delivery_tag, DumpJson(value)}});
  return PipelineError(replies, "recording an unacked message");
}

absl::Status KombuBroker::WaitForMessages(absl::Duration timeout) {
  // Moves the last element of the first queue onto itself: blocks until
  // the queue is not empty and changes nothing, so a reply lost with the
  // connection loses no message (BRPOP's would).
  absl::StatusOr<RedisReply> reply = client_.Command(
      {"BLMOVE", keys_[0], keys_[0], "RIGHT", "RIGHT",
       absl::StrFormat("%.3f", absl::ToDoubleSeconds(timeout))});
  if (!reply.ok()) return reply.status();
  return ReplyError(*reply, "BLMOVE");
}

absl::StatusOr<std::optional<std::string>> KombuBroker::FetchBlocking(
    absl::Duration timeout) {
  RedisCommand cmd = {"BRPOP"};
  cmd.insert(cmd.end(), keys_.begin(), keys_.end());
  cmd.push_back(absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(timeout))));
  absl::StatusOr<RedisReply> reply = client_.Command(cmd);
  if (!reply.ok()) return reply.status();
  if (absl::Status s = ReplyError(*reply, "BRPOP"); !s.ok()) return s;
  if (reply->is_nil() || reply->elements.size() != 2) {
    return std::optional<std::string>();
  }
  std::string payload = std::move(reply->elements[1].str);
  // The same window kombu has between BRPOP and HSET; FetchBatch, used
  // whenever messages are waiting, has none.
  if (absl::Status s = Record(payload); !s.ok()) {
    Log(LogLevel::kWarning, "could not record a message as unacked: ", s.message());
  }
  return std::optional<std::string>(std::move(payload));
}

void KombuBroker::AppendAck(const std::string& tag,
                            std::vector<RedisCommand>& out) {
  out.push_back({"ZREM", kUnackedIndex, tag});
  out.push_back({"HDEL", kUnacked, tag});
}

absl::Status KombuBroker::Ack(const std::vector<std::string>& tags) {
  if (tags.empty()) return absl::OkStatus();
  std::vector<RedisCommand> cmds;
  for (const std::string& tag : tags) AppendAck(tag, cmds);
  return PipelineError(client_.Pipeline(cmds), "ack");
}

absl::StatusOr<std::vector<std::string>> BoundQueues(
    RedisClient& client, const std::string& exchange,
    const std::string& routing_key) {
  if (exchange.empty()) return std::vector<std::string>{routing_key};
  absl::StatusOr<RedisReply> table =
      client.Command({"SMEMBERS", absl::StrCat("_kombu.binding.", exchange)});
  if (!table.ok()) return table.status();
  if (absl::Status s = ReplyError(*table, "reading exchange bindings"); !s.ok()) return s;
  std::vector<std::string> queues;
  for (const RedisReply& entry : table->elements) {
    std::vector<std::string> parts = absl::StrSplit(entry.str, kSep);
    if (parts.size() == 3 && (parts[0] == routing_key || parts[0].empty())) {
      queues.push_back(parts[2]);
    }
  }
  return queues;
}

absl::Status KombuBroker::Restore(const std::string& tag, bool leftmost) {
  absl::StatusOr<RedisReply> stored = client_.Command({"HGET", kUnacked, tag});
  if (!stored.ok()) return stored.status();
  // (An error reply is not the entry: parsed as one it would read as corrupt.)
  if (absl::Status s = ReplyError(*stored, "reading an unacked message"); !s.ok()) return s;
  if (stored->is_nil()) return absl::OkStatus();  // acked or restored already
  json entry = json::parse(stored->str, nullptr, /*allow_exceptions=*/false);
  if (!entry.is_array() || entry.size() != 3 || !entry[0].is_object() ||
      !entry[1].is_string() || !entry[2].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unacked entry ", tag, " is not [payload, exchange, routing_key]"));
  }
  json& payload = entry[0];
  // kombu's _do_restore_message marks both places.
  if (payload.contains("headers") && payload["headers"].is_object()) {
    payload["headers"]["redelivered"] = true;
  }
  if (payload.contains("properties") && payload["properties"].is_object() &&
      payload["properties"].contains("delivery_info") &&
      payload["properties"]["delivery_info"].is_object()) {
    payload["properties"]["delivery_info"]["redelivered"] = true;
  }
  absl::StatusOr<std::vector<std::string>> queues = BoundQueues(
      client_, entry[1].get<std::string>(), entry[2].get<std::string>());
  if (!queues.ok()) return queues.status();
  // An exchange whose bindings are gone: the routing key names the queue
  // in every Celery setup we know of.
  if (queues->empty() && !entry[2].get<std::string>().empty()) {
    queues->push_back(entry[2].get<std::string>());
  }
  if (queues->empty()) {
    return absl::NotFoundError(absl::StrCat("no queue to restore ", tag, " to"));
  }
  RedisCommand cmd = {"EVAL", kRestoreScript, "2", kUnacked, kUnackedIndex,
                      tag, stored->str, leftmost ? "LPUSH" : "RPUSH",
                      DumpJson(payload)};
  cmd.insert(cmd.end(), queues->begin(), queues->end());
  absl::StatusOr<RedisReply> moved = client_.Command(cmd);
  if (!moved.ok()) return moved.status();
  return ReplyError(*moved, "restore script");
}

absl::StatusOr<int> KombuBroker::RestoreVisible(absl::Duration visibility_timeout,
                                                int limit) {
  static thread_local absl::BitGen gen;
  const std::string token = absl::StrCat(absl::Uniform<uint64_t>(gen));
  // redis-py's Lock: SET NX PX, released only by its owner.
  absl::StatusOr<RedisReply> locked = client_.Command(
      {"SET", kUnackedMutex, token, "NX", "PX", "300000"});
  if (!locked.ok()) return locked.status();
  if (absl::Status s = ReplyError(*locked, "taking unacked_mutex"); !s.ok()) return s;
  if (locked->is_nil()) return 0;
  int restored = 0;
  absl::StatusOr<RedisReply> visible = client_.Command(
      {"ZREVRANGEBYSCORE", kUnackedIndex,
       UnixSeconds(absl::Now() - visibility_timeout), "0", "LIMIT", "0",
       absl::StrCat(limit)});
  absl::Status status = visible.status();
  if (visible.ok()) {
    for (const RedisReply& tag : visible->elements) {
      absl::Status s = Restore(tag.str, /*leftmost=*/false);
      if (s.ok()) ++restored;
      else if (absl::IsUnavailable(s)) { status = s; break; }
      else Log(LogLevel::kError, "restoring ", tag.str, ": ", s.message());
    }
  }
  if (client_.connected()) {
    (void)client_.Command({"EVAL", kUnlockScript, "1", kUnackedMutex, token});
  }
  if (!status.ok()) return status;
  return restored;
}

absl::Status KombuBroker::Touch(const std::vector<std::string>& tags) {
  const std::string now = UnixSeconds(absl::Now());
  std::vector<RedisCommand> cmds;
  for (size_t i = 0; i < tags.size(); i += 500) {
    RedisCommand cmd = {"ZADD", kUnackedIndex, "XX"};
    for (size_t j = i; j < std::min(tags.size(), i + 500); ++j) {
      cmd.push_back(now);
      cmd.push_back(tags[j]);
    }
    cmds.push_back(std::move(cmd));
  }
  if (cmds.empty()) return absl::OkStatus();
  return PipelineError(client_.Pipeline(cmds), "refreshing unacked_index");
}

}  // namespace celery
}  // namespace forkserver
