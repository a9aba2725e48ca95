#include "lib/celery/task_registry.h"

#include <algorithm>
#include <map>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/celery/message.h"
#include "lib/celery/outcome.h"

namespace forkserver {
namespace celery {
namespace {

using nlohmann::json;

// Registration happens during static initialisation, single-threaded;
// afterwards the map is only read.
std::map<std::string, CeleryTaskEntry, std::less<>>& Registry() {
  static auto* registry = new std::map<std::string, CeleryTaskEntry, std::less<>>();
  return *registry;
}

constexpr char kTypeUrl[] = "type.forkserver/celery.exception";

const char* PythonTypeFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return "ValueError";
    case absl::StatusCode::kNotFound: return "KeyError";
    case absl::StatusCode::kOutOfRange: return "IndexError";
    case absl::StatusCode::kUnimplemented: return "NotImplementedError";
    case absl::StatusCode::kPermissionDenied: return "PermissionError";
    default: return "RuntimeError";
  }
}

std::string Traceback(const std::string& task, absl::string_view type,
                      absl::string_view message, TaskContext& context) {
  return absl::StrCat("Traceback (most recent call last):\n  task ", task,
                      ", job ", context.job_id(), ", worker pid ", ::getpid(),
                      " (index ", context.worker_index(), ")\n", type, ": ",
                      message, "\n");
}

TaskOutcome FromStatus(const std::string& task, const absl::Status& status,
                       TaskContext& context) {
  const std::string message(status.message());
  if (GetPoolError(status) == PoolError::kSoftTimeLimitExceeded) {
    return TaskOutcome::Failure("SoftTimeLimitExceeded", "billiard.exceptions",
                                json::array(),
                                Traceback(task, "SoftTimeLimitExceeded", "", context));
  }
  std::string type = PythonTypeFor(status.code()), module = "builtins";
  if (absl::optional<absl::Cord> named = status.GetPayload(kTypeUrl)) {
    const std::string full(*named);
    const size_t dot = full.rfind('.');
    module = full.substr(0, dot);
    type = full.substr(dot + 1);
  }
  return TaskOutcome::Failure(type, module, json::array({message}),
                              Traceback(task, type, message, context));
}

TaskOutcome Run(const std::string& task, const json& args, const json& kwargs,
                TaskContext& context) {
  const CeleryTaskEntry* entry = FindCeleryTask(task);
  if (entry == nullptr) {
    return TaskOutcome::Failure("NotRegistered", "celery.exceptions",
                                json::array({task}), "");
  }
  TaskCall call{task, args, kwargs, context};
  auto failure = [&](absl::string_view type, const std::string& what) {
    return TaskOutcome::Failure(type, "builtins", json::array({what}),
                                Traceback(task, type, what, context));
  };
  try {
    absl::StatusOr<json> result = entry->function(call);
    if (!result.ok()) return FromStatus(task, result.status(), context);
    return TaskOutcome::Success(*std::move(result));
  } catch (const TaskException& e) {
    return failure(e.type(), e.what());
  } catch (const std::invalid_argument& e) {
    return failure("ValueError", e.what());
  } catch (const std::domain_error& e) {
    return failure("ValueError", e.what());
  } catch (const std::out_of_range& e) {
    return failure("IndexError", e.what());
  } catch (const std::bad_alloc& e) {
    return failure("MemoryError", e.what());
  } catch (const std::exception& e) {
    return failure("RuntimeError", e.what());
  }
}

// The pool task: {"task", "args", "kwargs"[, "expires": Unix µs]} in, an
// outcome out. Its own
// argument errors are outcomes too, so the parent always gets one.
absl::StatusOr<std::string> CeleryExecute(const std::string& request,
                                          TaskContext& context) {
  const json r = json::parse(request, nullptr, /*allow_exceptions=*/false);
  if (!r.is_object() || !r.contains("task") || !r["task"].is_string() ||
      !r.contains("args") || !r["args"].is_array() || !r.contains("kwargs") ||
      !r["kwargs"].is_object()) {
    return DumpJson(TaskOutcome::Failure("ValueError", "builtins",
                                         json::array({"malformed request"}), "")
                        .ToJson());
  }
  if (r.contains("expires") && r["expires"].is_number_integer() &&
      absl::ToUnixMicros(absl::Now()) >= r["expires"].get<int64_t>()) {
    return DumpJson(TaskOutcome::Revoked("expired").ToJson());
  }
  const std::string task = r["task"].get<std::string>();
  return DumpJson(Run(task, r["args"], r["kwargs"], context).ToJson());
}
FORKSERVER_REGISTER_TASK(CeleryExecute);

}  // namespace

absl::StatusOr<json> TaskCall::Arg(size_t index, const char* keyword) const {
  if (index < args.size()) return args[index];
  if (auto it = kwargs.find(keyword); it != kwargs.end()) return *it;
  return TaskFailure("TypeError",
                     absl::StrCat(name, "() missing required argument: '",
                                  keyword, "'"));
}

const CeleryTaskEntry* FindCeleryTask(absl::string_view name) {
  auto it = Registry().find(name);
  return it == Registry().end() ? nullptr : &it->second;
}

std::vector<std::string> CeleryTaskNames() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : Registry()) names.push_back(name);
  return names;
}

absl::Status TaskFailure(absl::string_view type, absl::string_view message,
                         absl::string_view module) {
  absl::Status status = absl::UnknownError(message);
  status.SetPayload(kTypeUrl, absl::Cord(absl::StrCat(module, ".", type)));
  return status;
}

namespace internal {
CeleryTaskRegistrar::CeleryTaskRegistrar(const char* name,
                                         CeleryTaskFunction function,
                                         CeleryTaskOptions options) {
  Registry()[name] = CeleryTaskEntry{function, options};
}
}  // namespace internal

}  // namespace celery
}  // namespace forkserver
