#include "lib/pool/pool_options_check.h"

#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"
#include "lib/process/start_method.h"
#include "lib/registry/registry.h"

namespace forkserver {
namespace internal {
namespace {

absl::Status CheckDuration(const char* name,
                           const std::optional<absl::Duration>& value) {
  if (value.has_value() && *value < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must not be negative, got ",
                     absl::FormatDuration(*value)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePoolOptions(const PoolOptions& o) {
  if (o.processes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "processes must be at least 1 (or 0 for the number of CPUs), got ",
        o.processes));
  }
  if (o.maxtasksperchild.has_value() && *o.maxtasksperchild <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "maxtasksperchild must be a positive number (or unset), got ",
        *o.maxtasksperchild));
  }
  RETURN_IF_ERROR(CheckDuration("timeout", o.timeout));
  RETURN_IF_ERROR(CheckDuration("soft_timeout", o.soft_timeout));
  RETURN_IF_ERROR(CheckDuration("lost_worker_timeout", o.lost_worker_timeout));
  RETURN_IF_ERROR(CheckDuration("hard_kill_grace", o.hard_kill_grace));
  if (o.max_restarts.has_value() && *o.max_restarts < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_restarts must not be negative, got ", *o.max_restarts));
  }
  if (o.max_restart_freq <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_restart_freq must be positive");
  }
  if (o.semaphore.has_value() && *o.semaphore <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("semaphore must be positive, got ", *o.semaphore));
  }
  if (o.max_memory_per_child_kib.has_value() &&
      *o.max_memory_per_child_kib <= 0) {
    return absl::InvalidArgumentError(
        "max_memory_per_child_kib must be positive (KiB), or unset");
  }
  if (!o.initializer.empty() && FindInitializer(o.initializer) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no initializer named '", o.initializer,
        "' is registered (FORKSERVER_INITIALIZER)"));
  }
  if (!o.on_process_exit.empty() && FindExitHook(o.on_process_exit) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no exit hook named '", o.on_process_exit,
        "' is registered (FORKSERVER_EXIT_HOOK)"));
  }
  if (o.start_method.has_value()) {
    RETURN_IF_ERROR(CheckStartMethodAllowed(*o.start_method));
  }
  if (o.sandbox.has_value() &&
      o.start_method.value_or(GetStartMethod()) != StartMethod::kForkServer) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a sandboxed pool needs the 'forkserver' start method, not '",
        StartMethodName(o.start_method.value_or(GetStartMethod())),
        "' (sandboxes are built from the fork server's template zygotes)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCallOptions(const CallOptions& o) {
  RETURN_IF_ERROR(CheckDuration("timeout", o.timeout));
  RETURN_IF_ERROR(CheckDuration("soft_timeout", o.soft_timeout));
  RETURN_IF_ERROR(CheckDuration("lost_worker_timeout", o.lost_worker_timeout));
  if (o.chunksize.has_value() && *o.chunksize <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunksize must be positive, got ", *o.chunksize));
  }
  return absl::OkStatus();
}

int ProcessCount(const PoolOptions& options) {
  if (options.processes > 0) return options.processes;
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}

}  // namespace internal
}  // namespace forkserver
