#include "lib/init.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "forkserver/server_main.h"
#include "lib/base/standard_fds.h"
#include "lib/registry/program.h"
#include "lib/registry/registry.h"
#include "lib/process/spawned_worker.h"

namespace forkserver {
namespace {

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
  // Before anything of ours is opened: a closed 0, 1 or 2 would otherwise
  // be taken by the library's first socket or pipe.
  if (absl::Status fds = EnsureStandardFdsOpen(); !fds.ok()) return fds;
  if (absl::Status registry = ValidateRegistry(); !registry.ok()) {
    return registry;
  }
  internal::RecordProgram(ApplicationArgs(argc, argv), ResolveExecutable());

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

}  // namespace forkserver
