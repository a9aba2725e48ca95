// File: lib/celery/message.h
// -----------------------------------------------------------------------------
// Celery task messages (protocol v2) as kombu's Redis transport stores
// them: a JSON envelope
//
//   {"body": "<base64 of [args, kwargs, embed]>", "content-type":
//    "application/json", "content-encoding": "utf-8",
//    "headers": {"task", "id", "eta", "expires", "timelimit": [hard, soft],
//                "retries", "root_id", "parent_id", "argsrepr", ...},
//    "properties": {"delivery_tag", "delivery_info": {"exchange",
//                   "routing_key"}, "body_encoding": "base64", ...}}
//
// Parsing never throws and never loses the message: what can be read (the
// delivery tag, the id, the task name) is kept even when the rest is bad,
// and `error` says what was wrong, so the caller can store a FAILURE for
// the id or log a rejection and ack the tag.

#ifndef FORKSERVER_LIB_CELERY_MESSAGE_H_
#define FORKSERVER_LIB_CELERY_MESSAGE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace forkserver {
namespace celery {

struct TaskMessage {
  // The envelope exactly as popped (restored verbatim by the broker code).
  std::string raw;
  // kombu's bookkeeping.
  std::string delivery_tag;
  std::string exchange;
  std::string routing_key;
  bool redelivered = false;
  // Celery's headers.
  std::string id;
  std::string task;
  std::optional<absl::Time> eta;
  std::optional<absl::Time> expires;
  std::optional<absl::Duration> hard_time_limit;
  std::optional<absl::Duration> soft_time_limit;
  int retries = 0;
  std::string root_id;
  std::string parent_id;
  std::string group_id;
  std::string argsrepr;
  bool ignore_result = false;
  // The body.
  nlohmann::json args = nlohmann::json::array();
  nlohmann::json kwargs = nlohmann::json::object();
  // OK, or what made the message unusable (INVALID_ARGUMENT).
  absl::Status error;
};

TaskMessage ParseTaskMessage(std::string raw);

// Celery's ISO 8601 times: "2024-05-01T12:00:00.123456+00:00", with or
// without fraction and offset (no offset: UTC).
std::optional<absl::Time> ParseIsoTime(absl::string_view text);

// A kombu envelope around a JSON body, for messages we publish ourselves
// (remote-control replies).
std::string MakeEnvelope(const nlohmann::json& body,
                         const nlohmann::json& headers,
                         absl::string_view exchange,
                         absl::string_view routing_key);

// JSON text, never throwing: invalid UTF-8 in strings becomes U+FFFD.
std::string DumpJson(const nlohmann::json& value);

// The decoded JSON body of any kombu envelope; INVALID_ARGUMENT if the
// envelope or body is unreadable.
absl::Status DecodeEnvelopeBody(const nlohmann::json& envelope,
                                nlohmann::json* body);

}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CELERY_MESSAGE_H_
