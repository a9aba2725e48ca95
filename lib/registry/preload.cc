#include "lib/registry/preload.h"

#include <cxxabi.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/registry/registry.h"

namespace forkserver {
namespace {

ABSL_CONST_INIT absl::Mutex preload_mutex(absl::kConstInit);
bool preloads_ran ABSL_GUARDED_BY(preload_mutex) = false;
absl::Status* preload_result ABSL_GUARDED_BY(preload_mutex) = nullptr;
absl::Duration preload_duration ABSL_GUARDED_BY(preload_mutex);

std::string Demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && demangled ? demangled.get() : name;
}

// Runs one preload: its failure, or an exception escaping it, is a status
// naming the preload, never an abort of the server.
absl::Status RunOne(const std::string& name, PreloadFunction function) {
  absl::Status status;
  try {
    status = function();
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("preload '", name, "' threw ",
                     Demangle(typeid(e).name()), ": ", e.what()));
  } catch (...) {
    return absl::FailedPreconditionError(absl::StrCat(
        "preload '", name, "' threw an exception not derived from "
        "std::exception"));
  }
  if (!status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("preload '", name, "' failed: ", status.ToString()));
  }
  return absl::OkStatus();
}

absl::Status RunAll() {
  for (const auto& [name, function] : RegisteredPreloads()) {
    absl::Status status = RunOne(name, function);
    if (!status.ok()) return status;
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
