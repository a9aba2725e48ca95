#include "lib/celery/message.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace forkserver {
namespace celery {
namespace {

using nlohmann::json;

// The member `key` of `object` if it is a string, else "".
std::string StringAt(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const json* ObjectAt(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

std::optional<absl::Duration> Seconds(const json& value) {
  if (!value.is_number()) return std::nullopt;
  return absl::Seconds(value.get<double>());
}

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

// eta, expires, timelimit, retries, ids: everything but the body.
absl::Status ReadHeaders(const json& headers, TaskMessage& m) {
  m.id = StringAt(headers, "id");
  m.task = StringAt(headers, "task");
  m.root_id = StringAt(headers, "root_id");
  m.parent_id = StringAt(headers, "parent_id");
  m.group_id = StringAt(headers, "group");
  m.argsrepr = StringAt(headers, "argsrepr");
  if (m.id.empty()) return Invalid("no task id in the headers");
  if (m.task.empty()) return Invalid("no task name in the headers");
  if (auto r = headers.find("retries"); r != headers.end() && r->is_number_integer()) {
    m.retries = r->get<int>();
  }
  if (auto r = headers.find("ignore_result"); r != headers.end() && r->is_boolean()) {
    m.ignore_result = r->get<bool>();
  }
  if (auto t = headers.find("timelimit"); t != headers.end() && t->is_array() &&
                                          t->size() == 2) {
    m.hard_time_limit = Seconds((*t)[0]);
    m.soft_time_limit = Seconds((*t)[1]);
  }
  const std::pair<const char*, std::optional<absl::Time>*> times[] = {
      {"eta", &m.eta}, {"expires", &m.expires}};
  for (const auto& [key, field] : times) {
    const std::string text = StringAt(headers, key);
    if (text.empty()) continue;
    *field = ParseIsoTime(text);
    if (!*field) return Invalid(absl::StrCat("unreadable ", key, " '", text, "'"));
  }
  return absl::OkStatus();
}

absl::Status ReadBody(const json& body, TaskMessage& m) {
  if (!body.is_array() || body.size() < 2) {
    return Invalid("the body is not [args, kwargs, embed]");
  }
  if (!body[0].is_array()) return Invalid("args is not a list");
  if (!body[1].is_object()) return Invalid("kwargs is not an object");
  m.args = body[0];
  m.kwargs = body[1];
  return absl::OkStatus();
}

std::string NewUuid() {
  static thread_local absl::BitGen gen;
  uint64_t hi = absl::Uniform<uint64_t>(gen), lo = absl::Uniform<uint64_t>(gen);
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                    // version 4
  lo = (lo & ~(0xC0ULL << 56)) | (0x80ULL << 56);        // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32,
                         (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48,
                         lo & 0xFFFFFFFFFFFFULL);
}

}  // namespace

std::optional<absl::Time> ParseIsoTime(absl::string_view text) {
  absl::Time t;
  std::string err;
  for (const char* format : {"%Y-%m-%d%ET%H:%M:%E*S%Ez", "%Y-%m-%d%ET%H:%M:%E*S",
                             "%Y-%m-%d %H:%M:%E*S%Ez", "%Y-%m-%d %H:%M:%E*S"}) {
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &t, &err)) return t;
  }
  return std::nullopt;
}

absl::Status DecodeEnvelopeBody(const json& envelope, json* body) {
  if (!envelope.is_object()) return Invalid("the message is not a JSON object");
  const std::string content_type = StringAt(envelope, "content-type");
  if (content_type != "application/json") {
    return Invalid(absl::StrCat("content type '", content_type,
                                "' is not application/json"));
  }
  auto it = envelope.find("body");
  if (it == envelope.end() || !it->is_string()) return Invalid("no body");
  std::string text = it->get<std::string>();
  const json* properties = ObjectAt(envelope, "properties");
  if (properties != nullptr && StringAt(*properties, "body_encoding") == "base64") {
    std::string decoded;
    if (!absl::Base64Unescape(text, &decoded)) return Invalid("bad base64 body");
    text = std::move(decoded);
  }
  *body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) return Invalid("the body is not JSON");
  return absl::OkStatus();
}

TaskMessage ParseTaskMessage(std::string raw) {
  TaskMessage m;
  m.raw = std::move(raw);
  const json envelope = json::parse(m.raw, nullptr, /*allow_exceptions=*/false);
  if (envelope.is_discarded() || !envelope.is_object()) {
    m.error = Invalid("the message is not a JSON object");
    return m;
  }
  if (const json* properties = ObjectAt(envelope, "properties")) {
    m.delivery_tag = StringAt(*properties, "delivery_tag");
    if (const json* info = ObjectAt(*properties, "delivery_info")) {
      m.exchange = StringAt(*info, "exchange");
      m.routing_key = StringAt(*info, "routing_key");
      auto r = info->find("redelivered");
      m.redelivered = r != info->end() && r->is_boolean() && r->get<bool>();
    }
  }
  const json* headers = ObjectAt(envelope, "headers");
  if (headers == nullptr) {
    m.error = Invalid("no headers (Celery protocol v1 is not supported)");
    return m;
  }
  m.error = ReadHeaders(*headers, m);
  if (!m.error.ok()) return m;
  json body;
  m.error = DecodeEnvelopeBody(envelope, &body);
  if (m.error.ok()) m.error = ReadBody(body, m);
  return m;
}

std::string MakeEnvelope(const json& body, const json& headers,
                         absl::string_view exchange,
                         absl::string_view routing_key) {
  json envelope = {
      {"body", absl::Base64Escape(DumpJson(body))},
      {"content-encoding", "utf-8"},
      {"content-type", "application/json"},
      {"headers", headers},
      {"properties",
       {{"delivery_mode", 1},
        {"delivery_info",
         {{"exchange", std::string(exchange)},
          {"routing_key", std::string(routing_key)}}},
        {"priority", 0},
        {"body_encoding", "base64"},
        {"delivery_tag", NewUuid()}}}};
  return DumpJson(envelope);
}

std::string DumpJson(const json& value) {
  // Replace invalid UTF-8 instead of throwing: a task's result string may
  // hold any bytes.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace celery
}  // namespace forkserver
