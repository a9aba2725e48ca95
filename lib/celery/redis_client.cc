#include "lib/celery/redis_client.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/celery/log.h"

namespace forkserver {
namespace celery {
namespace {

// Connecting and each command: a broker that stops answering is noticed
// (BRPOP waits at most a second server-side, far below this).
constexpr timeval kConnectTimeout = {2, 0};
constexpr timeval kCommandTimeout = {15, 0};

// Error replies meaning "the server cannot serve this now, the command was
// not run": LOADING (restarted, still reading its AOF or RDB; every
// command but a few is refused, PING included) and BUSY (a script ran past
// its time limit). redis-py makes LOADING a ConnectionError, so kombu and
// Celery reconnect and retry; we do the same with UNAVAILABLE, which every
// caller already retries after ConnectWithBackoff. Taken as an ordinary
// error reply, a result store or an ack sent in that window was dropped.
bool ServerNotReady(const RedisReply& reply) {
  if (!reply.is_error()) return false;
  for (absl::string_view code : {"LOADING", "BUSY"}) {
    if (absl::StartsWith(reply.str, code) &&
        (reply.str.size() == code.size() || reply.str[code.size()] == ' ')) {
      return true;
    }
  }
  return false;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(Convert(r->element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

RedisClient::RedisClient(RedisUrl url, std::string name)
    : url_(std::move(url)), name_(std::move(name)) {}

RedisClient::~RedisClient() { Disconnect(); }

void RedisClient::Disconnect() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

absl::Status RedisClient::Fail(absl::string_view what) {
  std::string detail = context_ != nullptr && context_->err != 0
                           ? std::string(context_->errstr)
                           : std::string("connection lost");
  Disconnect();
  return absl::UnavailableError(absl::StrCat(
      "Redis ", name_, " at ", url_.display, ": ", what, ": ", detail));
}

absl::Status RedisClient::Connect() {
  if (context_ != nullptr) return absl::OkStatus();
  context_ = url_.socket_path.empty()
                 ? redisConnectWithTimeout(url_.host.c_str(), url_.port,
                                           kConnectTimeout)
                 : redisConnectUnixWithTimeout(url_.socket_path.c_str(),
                                               kConnectTimeout);
  if (context_ == nullptr) {
    return absl::UnavailableError("hiredis could not allocate a context");
  }
  if (context_->err != 0) return Fail("cannot connect");
  // No fork happens in this process between socket() and here: pool
  // workers are forked by the fork server, a separate process.
  if (::fcntl(context_->fd, F_SETFD, FD_CLOEXEC) != 0) {
    return Fail("fcntl(FD_CLOEXEC)");
  }
  redisSetTimeout(context_, kCommandTimeout);
  std::vector<RedisCommand> setup;
  if (!url_.password.empty()) setup.push_back({"AUTH", url_.password});
  if (url_.db != 0) setup.push_back({"SELECT", absl::StrCat(url_.db)});
  // A restarted server accepts connections while it loads its data and
  // refuses PING until done (LOADING, made UNAVAILABLE by ReadOne): so a
  // connection counts only once the server serves, and ConnectWithBackoff
  // backs off through the loading instead of reconnecting in a tight loop.
  setup.push_back({"PING"});
  absl::StatusOr<std::vector<RedisReply>> replies = Pipeline(setup);
  if (!replies.ok()) return replies.status();
  for (const RedisReply& reply : *replies) {
    if (reply.is_error()) {
      Disconnect();
      return absl::UnavailableError(
          absl::StrCat("Redis ", name_, " at ", url_.display, ": ", reply.str));
    }
  }
  return absl::OkStatus();
}

absl::Status RedisClient::ConnectWithBackoff(const std::function<bool()>& stop) {
  absl::Duration wait = absl::Milliseconds(100);
  for (;;) {
    absl::Status connected = Connect();
    if (connected.ok()) return connected;
    if (stop()) return absl::FailedPreconditionError("stopping");
    Log(LogLevel::kError, connected.message(), ". Trying again in ",
        absl::FormatDuration(wait), "...");
    // Sleep in slices so that a shutdown is not held up by the backoff.
    const absl::Time until = absl::Now() + wait;
    while (absl::Now() < until && !stop()) {
      absl::SleepFor(std::min(absl::Milliseconds(50), until - absl::Now()));
    }
    wait = std::min(wait * 2, absl::Seconds(5));
  }
}

absl::Status RedisClient::Append(const RedisCommand& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  if (redisAppendCommandArgv(context_, static_cast<int>(args.size()),
                             args.data(), lengths.data()) != REDIS_OK) {
    return Fail("cannot send");
  }
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisClient::ReadOne() {
  void* raw = nullptr;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    return Fail("cannot read");
  }
  RedisReply reply = Convert(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  if (ServerNotReady(reply)) return NotReady(reply);
  return reply;
}

absl::Status RedisClient::NotReady(const RedisReply& reply) {
  Disconnect();
  return absl::UnavailableError(absl::StrCat("Redis ", name_, " at ",
                                             url_.display, ": ", reply.str));
}

absl::StatusOr<RedisReply> RedisClient::Command(const RedisCommand& argv) {
  absl::StatusOr<std::vector<RedisReply>> replies = Pipeline({argv});
  if (!replies.ok()) return replies.status();
  return std::move((*replies)[0]);
}

absl::StatusOr<std::vector<RedisReply>> RedisClient::Pipeline(
    const std::vector<RedisCommand>& commands) {
  if (absl::Status s = Connect(); !s.ok()) return s;
  for (const RedisCommand& argv : commands) {
    if (absl::Status s = Append(argv); !s.ok()) return s;
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    absl::StatusOr<RedisReply> reply = ReadOne();
    if (!reply.ok()) return reply.status();
    replies.push_back(*std::move(reply));
  }
  return replies;
}

absl::Status RedisClient::Send(const RedisCommand& argv) {
  if (absl::Status s = Connect(); !s.ok()) return s;
  if (absl::Status s = Append(argv); !s.ok()) return s;
  // Flush now: nothing else will (hiredis writes when a reply is read).
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(context_, &done) != REDIS_OK) return Fail("cannot send");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<RedisReply>> RedisClient::Read(
    absl::Duration timeout) {
  if (context_ == nullptr) return Fail("not connected");
  // A reply may already sit in hiredis's buffer: poll() would not see it.
  void* raw = nullptr;
  if (redisReaderGetReply(context_->reader, &raw) != REDIS_OK) {
    return Fail("protocol error");
  }
  if (raw == nullptr) {
    pollfd pfd = {context_->fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(
                                          absl::ToInt64Milliseconds(timeout)));
    if (ready < 0 && errno != EINTR) return Fail("poll");
    if (ready <= 0) return std::optional<RedisReply>();
    absl::StatusOr<RedisReply> reply = ReadOne();
    if (!reply.ok()) return reply.status();
    return std::optional<RedisReply>(*std::move(reply));
  }
  RedisReply reply = Convert(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  if (ServerNotReady(reply)) return NotReady(reply);
  return std::optional<RedisReply>(std::move(reply));
}

}  // namespace celery
}  // namespace forkserver
