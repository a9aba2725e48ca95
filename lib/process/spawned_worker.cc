#include "lib/process/spawned_worker.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/base/sealed_memfd.h"
#include "lib/registry/entry_runner.h"
#include "lib/registry/preload.h"
#include "lib/registry/registry.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

[[noreturn]] void Fail(absl::string_view message) {
  std::fprintf(stderr, "forkserver: spawned worker (pid %d): %.*s\n",
               ::getpid(), static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  ::_exit(1);
}

absl::StatusOr<std::string> ReadAll(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("fstat of the launch fd");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done,
                        static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("read of the launch fd");
    done += static_cast<size_t>(n);
  }
  return bytes;
}

}  // namespace

absl::StatusOr<UniqueFd> WriteLaunchMemfd(const wire::WorkerLaunch& launch) {
  return MakeSealedMemfd("forkserver-launch", launch.SerializeAsString());
}

void SpawnedWorkerMain(int fd) {
  absl::StatusOr<std::string> bytes = ReadAll(fd);
  ::close(fd);
  if (!bytes.ok()) Fail(bytes.status().ToString());
  wire::WorkerLaunch launch;
  if (!launch.ParseFromString(*bytes)) Fail("undecodable launch message");
  EntryFunction entry = FindEntry(launch.entry());
  if (entry == nullptr) {
    Fail(absl::StrCat("no entry point named '", launch.entry(), "'"));
  }
  if (absl::Status preloaded = RunPreloadsOnce(); !preloaded.ok()) {
    Fail(preloaded.ToString());
  }
  RunEntryAndExit(entry, launch.arg(), launch.entry());
}

}  // namespace forkserver
