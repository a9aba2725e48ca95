#include "lib/spawned_worker.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/entry_runner.h"
#include "lib/preload.h"
#include "lib/registry.h"
#include "lib/status_macros.h"

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

absl::StatusOr<UniqueFd> SealedMemfd(const char* name,
                                     absl::string_view bytes) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) {
    if (errno == EMFILE || errno == ENFILE) {
      return absl::ResourceExhaustedError("memfd_create: out of descriptors");
    }
    return ErrnoError("memfd_create");
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write to a memfd");
    done += static_cast<size_t>(n);
  }
  // F_SEAL_FUTURE_WRITE, not F_SEAL_WRITE: the latter fails with EBUSY
  // while the kernel still holds extra references to the pages just
  // written (seen in a soak run), and all we need is that nobody writes
  // or shrinks it from now on.
  if (::fcntl(fd.get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | kSealFutureWrite | F_SEAL_SEAL) !=
      0) {
    return ErrnoError("sealing a memfd");
  }
  return fd;
}

absl::StatusOr<UniqueFd> WriteLaunchMemfd(const wire::WorkerLaunch& launch) {
  return SealedMemfd("forkserver-launch", launch.SerializeAsString());
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
