#include "lib/celery/outcome.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "lib/forkserver.h"

namespace forkserver {
namespace celery {

using nlohmann::json;

TaskOutcome TaskOutcome::Success(json value) {
  return TaskOutcome{"SUCCESS", std::move(value), ""};
}

TaskOutcome TaskOutcome::Failure(absl::string_view type,
                                 absl::string_view module, json args,
                                 std::string traceback) {
  if (!args.is_array()) args = json::array({std::move(args)});
  json exc = {{"exc_type", std::string(type)},
              {"exc_message", std::move(args)},
              {"exc_module", std::string(module)}};
  return TaskOutcome{"FAILURE", std::move(exc), std::move(traceback)};
}

TaskOutcome TaskOutcome::Revoked(absl::string_view reason) {
  TaskOutcome outcome = Failure("TaskRevokedError", "celery.exceptions",
                                json::array({std::string(reason)}), "");
  outcome.state = "REVOKED";
  return outcome;
}

std::string TaskOutcome::Summary() const {
  if (ok()) return DumpJson(result);
  std::vector<std::string> args;
  if (result.is_object() && result.contains("exc_message") &&
      result["exc_message"].is_array()) {
    for (const json& a : result["exc_message"]) args.push_back(DumpJson(a));
  }
  const std::string type = result.is_object() && result.contains("exc_type") &&
                                   result["exc_type"].is_string()
                               ? result["exc_type"].get<std::string>()
                               : "?";
  return absl::StrCat(type, "(", absl::StrJoin(args, ", "), ")");
}

json TaskOutcome::ToJson() const {
  return {{"state", state}, {"result", result}, {"traceback", traceback}};
}

absl::Status TaskOutcome::FromJson(const std::string& text,
                                   TaskOutcome* outcome) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("state") || !j["state"].is_string() ||
      !j.contains("result") || !j.contains("traceback") ||
      !j["traceback"].is_string()) {
    return absl::InvalidArgumentError("malformed outcome from a pool worker");
  }
  outcome->state = j["state"].get<std::string>();
  outcome->result = j["result"];
  outcome->traceback = j["traceback"].get<std::string>();
  return absl::OkStatus();
}

TaskOutcome OutcomeFromPoolError(const absl::Status& error,
                                 std::optional<absl::Duration> hard_limit) {
  const std::string message(error.message());
  switch (GetPoolError(error).value_or(PoolError::kTaskError)) {
    case PoolError::kWorkerLost:
      return TaskOutcome::Failure("WorkerLostError", "billiard.exceptions",
                                  json::array({message}), message);
    case PoolError::kTimeLimitExceeded: {
      json args = json::array();
      if (hard_limit) args.push_back(absl::ToDoubleSeconds(*hard_limit));
      else args.push_back(message);
      return TaskOutcome::Failure("TimeLimitExceeded", "billiard.exceptions",
                                  std::move(args), message);
    }
    case PoolError::kSoftTimeLimitExceeded:
      return TaskOutcome::Failure("SoftTimeLimitExceeded", "billiard.exceptions",
                                  json::array(), message);
    case PoolError::kTerminated:
      return TaskOutcome::Revoked("terminated");
    default:
      break;
  }
  // Anything else (the pool closed, a cancelled job): the worker's fault,
  // not the task's, said as plainly as the pool said it.
  return TaskOutcome::Failure("WorkerLostError", "billiard.exceptions",
                              json::array({message}), message);
}

std::string ResultMeta(const TaskMessage& message, const TaskOutcome& outcome,
                       absl::Time date_done) {
  nlohmann::ordered_json meta;
  meta["status"] = outcome.state;
  meta["result"] = outcome.result;
  meta["traceback"] = outcome.traceback.empty()
                          ? nlohmann::ordered_json(nullptr)
                          : nlohmann::ordered_json(outcome.traceback);
  meta["children"] = nlohmann::ordered_json::array();
  meta["date_done"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6S", date_done,
                                       absl::UTCTimeZone());
  if (!message.group_id.empty()) meta["group_id"] = message.group_id;
  if (!message.parent_id.empty()) meta["parent_id"] = message.parent_id;
  meta["task_id"] = message.id;
  return meta.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace celery
}  // namespace forkserver
