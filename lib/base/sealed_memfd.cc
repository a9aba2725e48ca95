#include "lib/base/sealed_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "lib/base/status_macros.h"

namespace forkserver {

absl::StatusOr<UniqueFd> MakeSealedMemfd(const char* name,
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
  // while the kernel still holds references to the pages just written.
  constexpr int kSealFutureWrite = 0x0010;
  if (::fcntl(fd.get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | kSealFutureWrite | F_SEAL_SEAL) !=
      0) {
    return ErrnoError("sealing a memfd");
  }
  return fd;
}

}  // namespace forkserver
