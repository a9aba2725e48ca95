#include "lib/celery/redis_url.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace forkserver {
namespace celery {
namespace {

absl::Status Bad(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad Redis URL '", url, "': ", why));
}

// "db=3" / "virtual_host=3" in a socket URL's query.
absl::Status ParseSocketQuery(absl::string_view url, absl::string_view query,
                              RedisUrl& out) {
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.first == "db" || kv.first == "virtual_host") {
      if (!absl::SimpleAtoi(kv.second, &out.db) || out.db < 0) {
        return Bad(url, "db is not a number");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseHostPart(absl::string_view url, absl::string_view rest,
                           RedisUrl& out) {
  std::pair<absl::string_view, absl::string_view> authority_path =
      absl::StrSplit(rest, absl::MaxSplits('/', 1));
  absl::string_view authority = authority_path.first;
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view credentials = authority.substr(0, at);
    if (size_t colon = credentials.find(':'); colon != absl::string_view::npos) {
      out.password = std::string(credentials.substr(colon + 1));
    } else {
      out.password = std::string(credentials);
    }
    authority = authority.substr(at + 1);
  }
  if (size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    if (!absl::SimpleAtoi(authority.substr(colon + 1), &out.port) ||
        out.port <= 0 || out.port > 65535) {
      return Bad(url, "port is not a number in 1..65535");
    }
    authority = authority.substr(0, colon);
  }
  out.host = authority.empty() ? "localhost" : std::string(authority);
  absl::string_view db = authority_path.second;
  db = db.substr(0, db.find('?'));
  if (!db.empty() && (!absl::SimpleAtoi(db, &out.db) || out.db < 0)) {
    return Bad(url, "db is not a number");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RedisUrl> ParseRedisUrl(absl::string_view url) {
  RedisUrl out;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "redis://")) {
    if (absl::Status s = ParseHostPart(url, rest, out); !s.ok()) return s;
  } else if (absl::ConsumePrefix(&rest, "redis+socket://") ||
             absl::ConsumePrefix(&rest, "unix://")) {
    std::pair<absl::string_view, absl::string_view> path_query =
        absl::StrSplit(rest, absl::MaxSplits('?', 1));
    if (path_query.first.empty() || path_query.first[0] != '/') {
      return Bad(url, "a socket URL needs an absolute path");
    }
    out.socket_path = std::string(path_query.first);
    if (absl::Status s = ParseSocketQuery(url, path_query.second, out);
        !s.ok()) {
      return s;
    }
  } else {
    return Bad(url, "expected redis:// or redis+socket://");
  }
  out.display = out.password.empty()
                    ? std::string(url)
                    : absl::StrCat(url.substr(0, url.find("://") + 3),
                                   ":**@", url.substr(url.rfind('@') + 1));
  return out;
}

}  // namespace celery
}  // namespace forkserver
