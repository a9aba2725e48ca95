// File: lib/celery/redis_client.h
// -----------------------------------------------------------------------------
// A small blocking Redis client over hiredis, one connection per object,
// used by one thread at a time.
//
//   RedisClient broker(url, "broker");
//   ASSIGN_OR_RETURN(RedisReply r, broker.Command({"LPUSH", "celery", body}));
//
// Connection errors are UNAVAILABLE and leave the client disconnected; the
// next call reconnects (once; ConnectWithBackoff keeps trying, logging as
// Celery does, until it succeeds or `stop` says so). So are the error
// replies of a server that cannot serve yet (LOADING after a restart,
// BUSY): the command did not run and, as with redis-py's BusyLoadingError,
// the answer is to retry, not to give up. A connection counts as made only
// once the server answers PING. Other error *replies* (WRONGTYPE,
// NOSCRIPT, ...) are replies of type kError, not failed calls. The socket
// is O_CLOEXEC, so pool workers and anything exec'd never inherit it.

#ifndef FORKSERVER_LIB_CELERY_REDIS_CLIENT_H_
#define FORKSERVER_LIB_CELERY_REDIS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/celery/redis_url.h"

struct redisContext;

namespace forkserver {
namespace celery {

struct RedisReply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
};

using RedisCommand = std::vector<std::string>;

class RedisClient {
 public:
  // `name` ("broker", "backend", "pidbox") appears in log lines.
  RedisClient(RedisUrl url, std::string name);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Connects (AUTH, SELECT db) unless connected.
  absl::Status Connect();
  // Connect() until it works, waiting 0.1 s, 0.2 s, ... up to 5 s between
  // attempts and logging each failure; FAILED_PRECONDITION once stop().
  absl::Status ConnectWithBackoff(const std::function<bool()>& stop);
  void Disconnect();
  bool connected() const { return context_ != nullptr; }

  // One command and its reply.
  absl::StatusOr<RedisReply> Command(const RedisCommand& argv);
  // Several commands in one round trip; one reply each, in order.
  absl::StatusOr<std::vector<RedisReply>> Pipeline(
      const std::vector<RedisCommand>& commands);

  // Pub/sub: Send() writes a command without reading (SUBSCRIBE), Read()
  // returns the next reply, or nullopt if none arrives within `timeout`.
  absl::Status Send(const RedisCommand& argv);
  absl::StatusOr<std::optional<RedisReply>> Read(absl::Duration timeout);

  const RedisUrl& url() const { return url_; }

 private:
  absl::Status Fail(absl::string_view what);
  // Disconnects; UNAVAILABLE with the server's LOADING / BUSY reply.
  absl::Status NotReady(const RedisReply& reply);
  absl::Status Append(const RedisCommand& argv);
  absl::StatusOr<RedisReply> ReadOne();

  RedisUrl url_;
  std::string name_;
  redisContext* context_ = nullptr;
};

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_REDIS_CLIENT_H_
