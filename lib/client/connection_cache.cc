#include "lib/client/connection_cache.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace forkserver {
namespace internal {
namespace {

struct Kept {
  IdleConnection connection;
  absl::Time since;
};

struct Cache {
  // The process whose connections these are: a forked child shares the
  // sockets with its parent and must never talk on them.
  pid_t owner = 0;
  absl::flat_hash_map<std::string, std::vector<Kept>> idle;
};

ABSL_CONST_INIT absl::Mutex cache_mutex(absl::kConstInit);

Cache& TheCache() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_mutex) {
  static Cache* cache = new Cache;  // Lives for the process.
  const pid_t self = ::getpid();
  if (cache->owner != self) {
    // The parent's sockets, by number: forgotten, never closed. A child
    // started with the "fork" method closed them in its setup and may have
    // opened its own files under those numbers since; closing them would
    // close the child's (a child that kept them holds O_CLOEXEC copies,
    // which its exec drops).
    for (auto& [path, kept] : cache->idle) {
      for (Kept& k : kept) (void)k.connection.socket.release();
    }
    cache->idle.clear();
    cache->owner = self;
  }
  return *cache;
}

// Nothing to read on an idle connection: the server is there and has not
// closed it. Readable means EOF, an error, or a message nobody asked for;
// none of them leaves the connection usable.
bool Quiet(int socket) {
  pollfd pfd{socket, POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 0;
}

}  // namespace

std::optional<IdleConnection> TakeIdleConnection(const std::string& socket_path) {
  absl::MutexLock lock(&cache_mutex);
  Cache& cache = TheCache();
  auto it = cache.idle.find(socket_path);
  if (it == cache.idle.end()) return std::nullopt;
  std::vector<Kept>& kept = it->second;
  const absl::Time now = absl::Now();
  while (!kept.empty()) {
    Kept last = std::move(kept.back());
    kept.pop_back();
    if (now - last.since < last.connection.idle_limit &&
        Quiet(last.connection.socket.get())) {
      return std::move(last.connection);
    }
    // Stale: closed here (`last` goes out of scope).
  }
  cache.idle.erase(it);
  return std::nullopt;
}

void KeepIdleConnection(const std::string& socket_path,
                        IdleConnection connection, int max_idle) {
  absl::MutexLock lock(&cache_mutex);
  Cache& cache = TheCache();
  // Sweep first: connections to servers that died or closed them, or too
  // old to reuse, hold descriptors for nothing (a client that talked to
  // many short-lived daemons would otherwise keep them all).
  const absl::Time now = absl::Now();
  for (auto it = cache.idle.begin(); it != cache.idle.end();) {
    std::vector<Kept>& kept = it->second;
    kept.erase(std::remove_if(kept.begin(), kept.end(),
                              [&](const Kept& k) {
                                return now - k.since >= k.connection.idle_limit ||
                                       !Quiet(k.connection.socket.get());
                              }),
               kept.end());
    if (kept.empty()) {
      cache.idle.erase(it++);
    } else {
      ++it;
    }
  }
  std::vector<Kept>& kept = cache.idle[socket_path];
  const size_t cap = static_cast<size_t>(std::clamp(max_idle, 0, kMaxIdlePerServer));
  if (kept.size() >= cap) return;  // Closed (`connection` goes out of scope).
  kept.push_back(Kept{std::move(connection), now});
}

void DropIdleConnections(const std::string& socket_path) {
  absl::MutexLock lock(&cache_mutex);
  TheCache().idle.erase(socket_path);
}

void DropAllIdleConnections() {
  absl::MutexLock lock(&cache_mutex);
  TheCache().idle.clear();
}

int IdleConnectionCount() {
  absl::MutexLock lock(&cache_mutex);
  int count = 0;
  for (const auto& [path, kept] : TheCache().idle) {
    count += static_cast<int>(kept.size());
  }
  return count;
}

}  // namespace internal
}  // namespace forkserver
