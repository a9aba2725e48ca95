// File: lib/celery/redis_url.h
// -----------------------------------------------------------------------------
// Celery's Redis URLs, as kombu and the Redis result backend accept them:
//
//   redis://[:password@]host[:port][/db]      (port 6379, db 0 by default)
//   redis+socket:///path/to/socket[?virtual_host=db]
//   unix:///path/to/socket[?db=N]
//
// Anything else (another scheme, a bad port or db, an empty socket path) is
// INVALID_ARGUMENT, never a silent default.

#ifndef FORKSERVER_LIB_CELERY_REDIS_URL_H_
#define FORKSERVER_LIB_CELERY_REDIS_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace forkserver {
namespace celery {

struct RedisUrl {
  // Exactly one of host (with port) and socket_path is set.
  std::string host;
  int port = 6379;
  std::string socket_path;
  int db = 0;
  std::string password;
  // The URL as given, with any password masked: for log lines.
  std::string display;
};

absl::StatusOr<RedisUrl> ParseRedisUrl(absl::string_view url);

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_REDIS_URL_H_
