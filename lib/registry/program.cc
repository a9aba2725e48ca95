#include "lib/registry/program.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"

namespace forkserver {
namespace {

std::atomic<bool> initialized{false};

// Written once by Init() before any other thread can exist; leaked so that
// exit-time destructors never race a worker thread still reading them.
std::vector<std::string>& MutableMainArgs() {
  static auto* args = new std::vector<std::string>;
  return *args;
}

std::string& MutableExecutablePath() {
  static auto* path = new std::string;
  return *path;
}

}  // namespace

const std::vector<std::string>& MainArgs() { return MutableMainArgs(); }

const std::string& MainExecutablePath() { return MutableExecutablePath(); }

namespace internal {

void RecordProgram(std::vector<std::string> main_args,
                   std::string executable_path) {
  MutableMainArgs() = std::move(main_args);
  MutableExecutablePath() = std::move(executable_path);
  initialized = true;
}

absl::Status CheckInitialized(absl::string_view what) {
  if (initialized) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot ", what,
      ": forkserver::Init(argc, argv) was not called (call it first thing "
      "in main(); the server and spawned workers re-run this binary)"));
}

}  // namespace internal
}  // namespace forkserver
