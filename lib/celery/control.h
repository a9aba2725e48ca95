// File: lib/celery/control.h
// -----------------------------------------------------------------------------
// Celery's remote control (kombu's pidbox) over Redis, the worker's side.
//
// `app.control.broadcast(...)` / `inspect().ping()` / `control.revoke(...)`
// PUBLISH a kombu envelope on the fanout channel "/<db>.celery.pidbox" whose
// body is {"method", "arguments", "destination", "pattern", "matcher",
// ["ticket", "reply_to": {"exchange", "routing_key"}]}. A worker named in
// `destination` (or any worker when it is null) runs the method; when
// there is a reply_to, it answers {hostname: reply} with a "ticket" header
// by pushing an envelope onto the queues bound to reply_to's exchange and
// routing key (the client's "<oid>.reply.celery.pidbox").
//
// ControlServer runs that on a thread with two connections (a subscribed
// one cannot send commands), reconnecting with backoff; handlers run on
// that thread. Methods: ping, revoke, shutdown, stats, plus whatever the
// worker adds; an unknown method answers {"error": "No such control
// command: <name>"} as Celery does.

#ifndef FORKSERVER_LIB_CELERY_CONTROL_H_
#define FORKSERVER_LIB_CELERY_CONTROL_H_

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "lib/celery/redis_client.h"
#include "lib/celery/redis_url.h"
#include "nlohmann/json.hpp"

namespace forkserver {
namespace celery {

using ControlHandler =
    std::function<nlohmann::json(const nlohmann::json& arguments)>;

class ControlServer {
 public:
  ControlServer(RedisUrl broker, std::string hostname,
                std::map<std::string, ControlHandler> handlers);
  ~ControlServer();

  void Start();
  void Stop();
  // Handles one control envelope (what arrives on the channel): runs the
  // method and publishes the reply. Public for tests.
  void HandleEnvelope(const std::string& envelope);

 private:
  void Loop();
  absl::Status Subscribe();
  void Reply(const nlohmann::json& reply_to, const nlohmann::json& ticket,
             const nlohmann::json& reply);

  RedisClient subscriber_;
  RedisClient publisher_;
  std::string hostname_;
  std::string channel_;
  std::map<std::string, ControlHandler> handlers_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> clock_{0};
  std::thread thread_;
};

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_CONTROL_H_
