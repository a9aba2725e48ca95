#include "lib/preload.h"

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/registry.h"

namespace forkserver {
namespace {

ABSL_CONST_INIT absl::Mutex preload_mutex(absl::kConstInit);
bool preloads_ran ABSL_GUARDED_BY(preload_mutex) = false;
absl::Status* preload_result ABSL_GUARDED_BY(preload_mutex) = nullptr;
absl::Duration preload_duration ABSL_GUARDED_BY(preload_mutex);

absl::Status RunAll() {
  for (const auto& [name, function] : RegisteredPreloads()) {
    absl::Status status = function();
    if (!status.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("preload '", name, "' failed: ", status.ToString()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunPreloadsOnce() {
  absl::MutexLock lock(&preload_mutex);
  if (!preloads_ran) {
    const absl::Time start = absl::Now();
    preload_result = new absl::Status(RunAll());  // Lives for the process.
    preload_duration = absl::Now() - start;
    preloads_ran = true;
  }
  return *preload_result;
}

absl::Duration PreloadDuration() {
  absl::MutexLock lock(&preload_mutex);
  return preload_duration;
}

}  // namespace forkserver
