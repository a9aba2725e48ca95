#include "lib/pool/flat_codec.h"

#include <limits>

namespace forkserver {
namespace internal {

absl::Status CheckBlock(size_t data_size, uint64_t item_size, uint64_t count) {
  // item_size * count must not wrap before it is compared.
  if (item_size != 0 &&
      count > std::numeric_limits<uint64_t>::max() / item_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a block of ", count, " items of ", item_size, " bytes overflows"));
  }
  if (item_size * count != data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("a block of ", count, " items of ", item_size,
                     " bytes holds ", data_size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace forkserver
