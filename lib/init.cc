#include "lib/init.h"

#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "forkserver/server_main.h"
#include "lib/registry.h"
#include "lib/spawned_worker.h"

namespace forkserver {
namespace {

std::atomic<bool> initialized{false};

// Written once by Init() before any other thread can exist.
std::vector<std::string>& MutableMainArgs() {
  static auto* args = new std::vector<std::string>;
  return *args;
}

std::string& MutableExecutablePath() {
  static auto* path = new std::string;
  return *path;
}

std::string ResolveExecutable() {
  char buffer[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(buffer, static_cast<size_t>(n));
}

// In server and worker mode the application's whole argv (argv[0] first)
// follows "--": the launcher cannot always choose argv[0] itself.
std::vector<std::string> ApplicationArgs(int argc, char** argv) {
  const bool library_mode =
      argc > 1 && (absl::string_view(argv[1]) == kServeFlag ||
                   absl::StartsWith(argv[1], kWorkerFdFlag));
  int first = 0;
  if (library_mode) {
    first = argc;
    for (int i = 1; i < argc; ++i) {
      if (absl::string_view(argv[i]) == "--") {
        first = i + 1;
        break;
      }
    }
  }
  return std::vector<std::string>(argv + first, argv + argc);
}

}  // namespace

absl::Status Init(int argc, char** argv) {
  if (absl::Status registry = ValidateRegistry(); !registry.ok()) {
    return registry;
  }
  MutableMainArgs() = ApplicationArgs(argc, argv);
  MutableExecutablePath() = ResolveExecutable();
  initialized = true;

  if (argc > 1 && absl::string_view(argv[1]) == kServeFlag) {
    ServerMain(argc, argv);
  }
  if (argc > 1 && absl::StartsWith(argv[1], kWorkerFdFlag)) {
    const char* forked = std::getenv("FORKED_BY_MULTIPROCESSING");
    int fd = -1;
    if (forked == nullptr || std::strcmp(forked, "1") != 0 ||
        !absl::SimpleAtoi(absl::string_view(argv[1]).substr(
                              std::strlen(kWorkerFdFlag)),
                          &fd) ||
        fd < 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", argv[1],
          "' is only valid in a worker spawned by forkserver (with "
          "FORKED_BY_MULTIPROCESSING=1)"));
    }
    SpawnedWorkerMain(fd);
  }
  return absl::OkStatus();
}

const std::vector<std::string>& MainArgs() { return MutableMainArgs(); }

const std::string& MainExecutablePath() { return MutableExecutablePath(); }

namespace internal {

absl::Status CheckInitialized(absl::string_view what) {
  if (initialized) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot ", what,
      ": forkserver::Init(argc, argv) was not called (call it first thing "
      "in main(); the server and spawned workers re-run this binary)"));
}

}  // namespace internal
}  // namespace forkserver
