#include "forkserver/memfd_args.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "forkserver/request_validation.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace server_internal {

absl::StatusOr<MappedArgument> MappedArgument::Map(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("fstat of the argument fd");
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("argument fd is not a memfd");
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  constexpr int kSealFutureWrite = 0x0010;  // F_SEAL_FUTURE_WRITE.
  if (seals < 0 || !(seals & F_SEAL_SHRINK) ||
      !(seals & (F_SEAL_WRITE | kSealFutureWrite))) {
    // Unsealed, the sender could shrink it under the child (SIGBUS).
    return absl::InvalidArgumentError(
        "argument fd is not a memfd sealed against writes and shrinking");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > kMaxMemfdArgBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("argument of ", size, " bytes exceeds the limit of ",
                     kMaxMemfdArgBytes));
  }
  MappedArgument mapped;
  if (size == 0) return mapped;
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (address == MAP_FAILED) return ErrnoError("mmap of the argument fd");
  mapped.address_ = address;
  mapped.size_ = size;
  return mapped;
}

absl::StatusOr<wire::ExecStrings> ReadExecStrings(int fd) {
  ASSIGN_OR_RETURN(MappedArgument mapped, MappedArgument::Map(fd));
  const absl::string_view bytes = mapped.view();
  if (bytes.size() > kMaxMemfdExecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "exec argv and env of ", bytes.size(), " bytes exceed the limit of ",
        kMaxMemfdExecBytes));
  }
  wire::ExecStrings strings;
  if (!strings.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        "exec argv and env memfd does not hold an ExecStrings message");
  }
  RETURN_IF_ERROR(ValidateExecStrings(strings.argv(), strings.env(),
                                      kMaxExecStringBytes));
  return strings;
}

MappedArgument::MappedArgument(MappedArgument&& other) noexcept
    : address_(std::exchange(other.address_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedArgument& MappedArgument::operator=(MappedArgument&& other) noexcept {
  if (this != &other) {
    Unmap();
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedArgument::~MappedArgument() { Unmap(); }

void MappedArgument::Unmap() {
  if (address_ != nullptr) ::munmap(address_, size_);
  address_ = nullptr;
}

}  // namespace server_internal
}  // namespace forkserver
