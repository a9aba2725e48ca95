// File: lib/celery/kombu_broker.h
// -----------------------------------------------------------------------------
// kombu's Redis transport, the consumer's side, on one RedisClient:
//
//   * queues are lists; producers LPUSH, consumers pop from the right; a
//     queue `q` with priorities is also `q\x06\x163`, `q\x06\x166`,
//     `q\x06\x169` (kombu's priority steps 0, 3, 6, 9), popped in that order;
//   * a message taken and not yet acknowledged is in the hash `unacked`
//     (delivery tag -> JSON [payload, exchange, routing_key]) and in the
//     sorted set `unacked_index` (tag -> time taken, Unix seconds);
//   * ack removes both; restore removes both and pushes the payload back
//     (with "redelivered": true) to the queues bound to its exchange and
//     routing key (`_kombu.binding.<exchange>`, or the routing key itself
//     for the default exchange "");
//   * restore_visible: whoever holds the lock `unacked_mutex` restores
//     messages taken longer ago than the visibility timeout.
//
// Differences from kombu, all compatible with it: FetchBatch pops and
// records in one Lua script, so a worker dying in between cannot lose a
// message (kombu's BRPOP then HSET can), and an idle worker waits with a
// BLMOVE that takes nothing; Touch() refreshes the index score
// of messages a live worker still holds, so only a dead worker's messages
// ever look stale and the visibility timeout can be short; a restore is a
// compare-and-move script rather than a WATCH transaction, so it never
// retries under other workers' ack traffic.

#ifndef FORKSERVER_LIB_CELERY_KOMBU_BROKER_H_
#define FORKSERVER_LIB_CELERY_KOMBU_BROKER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/celery/redis_client.h"

namespace forkserver {
namespace celery {

class KombuBroker {
 public:
  // `queues`: Celery queue names, in the order to prefer them.
  KombuBroker(RedisClient& client, std::vector<std::string> queues);

  RedisClient& client() { return client_; }

  // Up to `max` messages, without blocking, each already in `unacked`.
  // (A message without a delivery tag cannot be recorded; it is returned
  // all the same, for the caller to log and drop.)
  absl::StatusOr<std::vector<std::string>> FetchBatch(int max);
  // If the connection dies during a fetch, the next FetchBatch returns the
  // messages the script took (found under its batch key), if it ran.
  //
  // Waits up to `timeout` until the first queue is not empty, taking
  // nothing (the caller then calls FetchBatch). Other queues and
  // priorities are seen at the next FetchBatch.
  absl::Status WaitForMessages(absl::Duration timeout);
  // kombu's way, kept for comparison: BRPOP up to `timeout` (whole
  // seconds, at least 1), then record the message in `unacked`; a reply
  // lost in between loses the message.
  absl::StatusOr<std::optional<std::string>> FetchBlocking(
      absl::Duration timeout);

  // The commands that ack `tag` (for the caller's own pipelines).
  static void AppendAck(const std::string& tag, std::vector<RedisCommand>& out);
  absl::Status Ack(const std::vector<std::string>& tags);
  // Puts an unacked message back: `leftmost` false (kombu's restore) at
  // the consuming end, so it is taken next; true (reject with requeue)
  // behind everything queued. OK if the tag is no longer unacked.
  absl::Status Restore(const std::string& tag, bool leftmost);
  // kombu's restore_visible, for up to `limit` messages; how many it
  // restored (0 when another worker holds the lock).
  absl::StatusOr<int> RestoreVisible(absl::Duration visibility_timeout,
                                     int limit);
  // Sets the index score of each held tag to now (ZADD XX: never re-adds
  // a tag someone acked or restored).
  absl::Status Touch(const std::vector<std::string>& tags);

  static constexpr char kUnacked[] = "unacked";
  static constexpr char kUnackedIndex[] = "unacked_index";
  static constexpr char kUnackedMutex[] = "unacked_mutex";

 private:
  absl::Status Record(const std::string& payload);
  absl::StatusOr<std::vector<std::string>> RecoverBatch();

  RedisClient& client_;
  std::vector<std::string> keys_;  // every queue at every priority
  std::string lost_batch_;         // batch key of a fetch whose reply was lost
  std::string previous_batch_;     // to delete with the next fetch
};

// The queues bound to `exchange` for `routing_key`
// (`_kombu.binding.<exchange>`); for the default exchange "", the queue
// named by the routing key.
absl::StatusOr<std::vector<std::string>> BoundQueues(
    RedisClient& client, const std::string& exchange,
    const std::string& routing_key);

// Unix time in seconds with microseconds, as kombu's time() scores.
std::string UnixSeconds(absl::Time t);

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_KOMBU_BROKER_H_
