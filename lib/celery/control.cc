#include "lib/celery/control.h"

#include "absl/strings/str_cat.h"
#include "lib/celery/kombu_broker.h"
#include "lib/celery/log.h"
#include "lib/celery/message.h"

namespace forkserver {
namespace celery {

using nlohmann::json;

ControlServer::ControlServer(RedisUrl broker, std::string hostname,
                             std::map<std::string, ControlHandler> handlers)
    : subscriber_(broker, "broker (control)"),
      publisher_(broker, "broker (control replies)"),
      hostname_(std::move(hostname)),
      // kombu: keyprefix_fanout "/{db}." + exchange (no routing key for a
      // broadcast).
      channel_(absl::StrCat("/", broker.db, ".celery.pidbox")),
      handlers_(std::move(handlers)) {}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Start() { thread_ = std::thread([this] { Loop(); }); }

void ControlServer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

absl::Status ControlServer::Subscribe() {
  if (absl::Status s = subscriber_.ConnectWithBackoff([this] { return stop_.load(); });
      !s.ok()) {
    return s;
  }
  return subscriber_.Send({"PSUBSCRIBE", channel_});
}

void ControlServer::Loop() {
  bool subscribed = false;
  while (!stop_) {
    if (!subscribed) {
      subscribed = Subscribe().ok();
      continue;
    }
    absl::StatusOr<std::optional<RedisReply>> pushed =
        subscriber_.Read(absl::Milliseconds(200));
    if (!pushed.ok()) {
      Log(LogLevel::kError, pushed.status().message());
      subscribed = false;
      continue;
    }
    if (!pushed->has_value()) continue;
    const RedisReply& r = **pushed;
    // ["pmessage", pattern, channel, data] or ["message", channel, data].
    if (r.elements.size() == 4 && r.elements[0].str == "pmessage") {
      HandleEnvelope(r.elements[3].str);
    } else if (r.elements.size() == 3 && r.elements[0].str == "message") {
      HandleEnvelope(r.elements[2].str);
    }
  }
}

void ControlServer::HandleEnvelope(const std::string& text) {
  const json envelope = json::parse(text, nullptr, /*allow_exceptions=*/false);
  json body;
  if (absl::Status s = DecodeEnvelopeBody(envelope, &body); !s.ok() ||
      !body.is_object() || !body.contains("method") || !body["method"].is_string()) {
    Log(LogLevel::kWarning, "ignoring an unreadable control message: ",
        text.substr(0, 200));
    return;
  }
  if (body.contains("destination") && body["destination"].is_array()) {
    bool mine = false;
    for (const json& d : body["destination"]) mine |= d == hostname_;
    if (!mine) return;
  }
  const std::string method = body["method"].get<std::string>();
  const json arguments =
      body.contains("arguments") && body["arguments"].is_object()
          ? body["arguments"] : json::object();
  Log(LogLevel::kDebug, "control command ", method, " ", DumpJson(arguments));
  json reply;
  auto handler = handlers_.find(method);
  if (handler == handlers_.end()) {
    reply = {{"error", absl::StrCat("No such control command: ", method)}};
  } else {
    reply = handler->second(arguments);
  }
  if (body.contains("reply_to") && body["reply_to"].is_object()) {
    Reply(body["reply_to"], body.contains("ticket") ? body["ticket"] : json(),
          reply);
  }
}

namespace {
std::string StringField(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}
}  // namespace

void ControlServer::Reply(const json& reply_to, const json& ticket,
                          const json& reply) {
  const std::string exchange = StringField(reply_to, "exchange");
  const std::string routing_key = StringField(reply_to, "routing_key");
  const std::string envelope =
      MakeEnvelope({{hostname_, reply}},
                   {{"ticket", ticket}, {"clock", ++clock_}}, exchange,
                   routing_key);
  absl::StatusOr<std::vector<std::string>> queues =
      BoundQueues(publisher_, exchange, routing_key);
  if (!queues.ok()) {
    Log(LogLevel::kError, "control reply: ", queues.status().message());
    return;
  }
  // No queue bound: the client stopped waiting (kombu drops it the same).
  std::vector<RedisCommand> pushes;
  for (const std::string& q : *queues) pushes.push_back({"LPUSH", q, envelope});
  if (pushes.empty()) return;
  if (absl::StatusOr<std::vector<RedisReply>> r = publisher_.Pipeline(pushes); !r.ok()) {
    Log(LogLevel::kError, "control reply: ", r.status().message());
  }
}

}  // namespace celery
}  // namespace forkserver
