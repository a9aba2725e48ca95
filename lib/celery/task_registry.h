// File: lib/celery/task_registry.h
// -----------------------------------------------------------------------------
// Celery tasks in C++, registered by their Celery name. Arguments and
// result are JSON values: `args` a list, `kwargs` an object.
//
//   absl::StatusOr<nlohmann::json> Add(const forkserver::celery::TaskCall& call) {
//     ASSIGN_OR_RETURN(nlohmann::json x, call.Arg(0, "x"));
//     ...
//     return x.get<double>() + y.get<double>();
//   }
//   FORKSERVER_CELERY_TASK("forkserver.add", Add);
//
// A task fails with a Python exception type the client will see:
// return TaskFailure("ValueError", "x must be positive") (or throw
// TaskException). Other errors map to builtins: an absl::Status by code
// (INVALID_ARGUMENT ValueError, NOT_FOUND KeyError, OUT_OF_RANGE
// IndexError, UNIMPLEMENTED NotImplementedError, PERMISSION_DENIED
// PermissionError, otherwise RuntimeError), a std exception by type
// (std::invalid_argument ValueError, std::out_of_range IndexError,
// std::bad_alloc MemoryError, otherwise RuntimeError). A task that stops at
// its soft time limit returns forkserver::SoftTimeLimitExceededError() and
// the client sees billiard's SoftTimeLimitExceeded.
//
// All tasks run in pool workers through one pool task, "CeleryExecute",
// whose argument is {"task", "args", "kwargs"} and whose result is the
// outcome (lib/celery/outcome.h) as JSON: the Python exception is named in
// the worker, where the task's own status and exception are at hand.

#ifndef FORKSERVER_LIB_CELERY_TASK_REGISTRY_H_
#define FORKSERVER_LIB_CELERY_TASK_REGISTRY_H_

#include <optional>
#include <stdexcept>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/forkserver.h"
#include "nlohmann/json.hpp"

namespace forkserver {
namespace celery {

struct TaskCall {
  const std::string& name;
  const nlohmann::json& args;
  const nlohmann::json& kwargs;
  forkserver::TaskContext& context;

  // Positional argument `index`, else keyword `keyword`, else a TypeError
  // failure as Python would raise it.
  absl::StatusOr<nlohmann::json> Arg(size_t index, const char* keyword) const;
};

using CeleryTaskFunction = absl::StatusOr<nlohmann::json> (*)(const TaskCall&);

struct CeleryTaskOptions {
  // nullopt: the worker's --acks-late.
  std::optional<bool> acks_late;
};

struct CeleryTaskEntry {
  CeleryTaskFunction function = nullptr;
  CeleryTaskOptions options;
};

// The task registered as `name`, or nullptr.
const CeleryTaskEntry* FindCeleryTask(absl::string_view name);
// Registered names, sorted (for the startup banner).
std::vector<std::string> CeleryTaskNames();

// A failure the client sees as `module.type(message)`.
absl::Status TaskFailure(absl::string_view type, absl::string_view message,
                         absl::string_view module = "builtins");

class TaskException : public std::runtime_error {
 public:
  TaskException(std::string type, const std::string& message)
      : std::runtime_error(message), type_(std::move(type)) {}
  const std::string& type() const { return type_; }

 private:
  std::string type_;
};

namespace internal {
struct CeleryTaskRegistrar {
  CeleryTaskRegistrar(const char* name, CeleryTaskFunction function,
                      CeleryTaskOptions options = {});
};
}  // namespace internal

// The pool task every Celery task runs through.
inline constexpr char kExecuteTask[] = "CeleryExecute";

}  // namespace celery
}  // namespace forkserver

#define FORKSERVER_CELERY_TASK_CONCAT2(a, b) a##b
#define FORKSERVER_CELERY_TASK_CONCAT(a, b) FORKSERVER_CELERY_TASK_CONCAT2(a, b)
// FORKSERVER_CELERY_TASK("name", Function[, CeleryTaskOptions{...}])
#define FORKSERVER_CELERY_TASK(name, ...)                     \
  static const ::forkserver::celery::internal::CeleryTaskRegistrar \
      FORKSERVER_CELERY_TASK_CONCAT(forkserver_celery_task_, __LINE__)(name, __VA_ARGS__)

#endif  // FORKSERVER_LIB_CELERY_TASK_REGISTRY_H_
