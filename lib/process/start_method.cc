#include "lib/process/start_method.h"

#include <cstdlib>
#include <optional>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace forkserver {
namespace {

ABSL_CONST_INIT absl::Mutex start_method_mutex(absl::kConstInit);
ABSL_CONST_INIT std::optional<StartMethod> chosen_method
    ABSL_GUARDED_BY(start_method_mutex);

}  // namespace

bool ForkingDisabled() {
  const char* value = std::getenv("MULTIPROCESSING_FORKING_DISABLE");
  return value != nullptr && value[0] != '\0' &&
         absl::string_view(value) != "0";
}

absl::Status CheckStartMethodAllowed(StartMethod method) {
  if (method == StartMethod::kFork && ForkingDisabled()) {
    return absl::FailedPreconditionError(
        "start method 'fork' is disabled by MULTIPROCESSING_FORKING_DISABLE; "
        "use 'spawn' or 'forkserver'");
  }
  return absl::OkStatus();
}

absl::Status SetStartMethod(StartMethod method) {
  absl::Status allowed = CheckStartMethodAllowed(method);
  if (!allowed.ok()) return allowed;
  absl::MutexLock lock(&start_method_mutex);
  if (chosen_method.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "start method has already been set (to '",
        StartMethodName(*chosen_method), "')"));
  }
  chosen_method = method;
  return absl::OkStatus();
}

StartMethod GetStartMethod() {
  absl::MutexLock lock(&start_method_mutex);
  if (chosen_method.has_value()) return *chosen_method;
  return ForkingDisabled() ? StartMethod::kSpawn : StartMethod::kForkServer;
}

absl::string_view StartMethodName(StartMethod method) {
  switch (method) {
    case StartMethod::kFork:
      return "fork";
    case StartMethod::kSpawn:
      return "spawn";
    case StartMethod::kForkServer:
      return "forkserver";
  }
  return "unknown";
}

absl::StatusOr<StartMethod> ParseStartMethod(absl::string_view name) {
  for (StartMethod method :
       {StartMethod::kFork, StartMethod::kSpawn, StartMethod::kForkServer}) {
    if (StartMethodName(method) == name) return method;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown start method '", name,
      "' (expected 'fork', 'spawn' or 'forkserver')"));
}

std::vector<StartMethod> AllowedStartMethods() {
  std::vector<StartMethod> methods;
  if (!ForkingDisabled()) methods.push_back(StartMethod::kFork);
  methods.push_back(StartMethod::kSpawn);
  methods.push_back(StartMethod::kForkServer);
  return methods;
}

}  // namespace forkserver
