// File: lib/pool/flat_codec.h
// -----------------------------------------------------------------------------
// The flat codec: values of one size as one contiguous block, with no
// per-item framing and no per-item allocation.
//
//   std::vector<double> xs = {1.5, -0.0, NaN};
//   std::string block = internal::PackFlat(xs);          // 24 bytes, memcpy
//   std::vector<double> back;
//   RETURN_IF_ERROR(internal::UnpackFlat(block, &back));  // memcpy
//
// Where it is used:
//   - TaskCodec<std::vector<T>> for arithmetic T (not bool): the vector's
//     elements, native byte order (the pool's processes all run on one
//     machine), so a std::vector<double> result is one memcpy each way;
//   - Pool::Map / Imap over arithmetic arguments: the arguments of the
//     whole job as one block (PackedItems in proto/pool.proto), each item
//     exactly the bytes TaskCodec<T> writes for it;
//   - any chunk whose items happen to have one size (the pool packs them
//     itself: results of arithmetic tasks, same-length strings, tuples of
//     arithmetic values): ItemBlock below.
//
// Why native bytes and not varints: the codec of a single arithmetic
// value is already its memcpy, and a chunk must decode to exactly what
// TaskCodec<T>::Decode accepts for one item.

#ifndef FORKSERVER_LIB_POOL_FLAT_CODEC_H_
#define FORKSERVER_LIB_POOL_FLAT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace forkserver {
namespace internal {

// Types the flat codec packs: arithmetic, except bool (std::vector<bool>
// is a bitset with no contiguous storage).
template <typename T>
inline constexpr bool kFlatType =
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

// The values' native bytes, back to back.
template <typename T>
std::string PackFlat(const std::vector<T>& values) {
  static_assert(kFlatType<T>);
  std::string block(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(block.data(), values.data(), block.size());
  return block;
}

// Appends the values in `block` to `values`; INVALID_ARGUMENT (and nothing
// appended) unless the block is a whole number of values.
template <typename T>
absl::Status UnpackFlat(absl::string_view block, std::vector<T>* values) {
  static_assert(kFlatType<T>);
  if (block.size() % sizeof(T) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a block of ", block.size(), " bytes is not a whole number of ",
        sizeof(T), "-byte values"));
  }
  const size_t old = values->size();
  values->resize(old + block.size() / sizeof(T));
  if (!block.empty()) {
    std::memcpy(values->data() + old, block.data(), block.size());
  }
  return absl::OkStatus();
}

// OK when `data` holds exactly `count` items of `item_size` bytes (no
// overflow on the way); INVALID_ARGUMENT saying what is wrong otherwise.
absl::Status CheckBlock(size_t data_size, uint64_t item_size, uint64_t count);

// `count` items of `item_size` bytes each in one block: how a chunk of
// same-size items travels and is kept.
struct ItemBlock {
  std::string data;
  size_t item_size = 0;
  size_t count = 0;

  absl::string_view item(size_t i) const {
    return absl::string_view(data.data() + i * item_size, item_size);
  }
};

// A job's arguments: one string per item, or (all of one size) a block.
struct JobArgs {
  std::vector<std::string> items;
  bool packed = false;
  ItemBlock block;

  static JobArgs Strings(std::vector<std::string> items) {
    JobArgs args;
    args.items = std::move(items);
    return args;
  }
  static JobArgs Packed(ItemBlock block) {
    JobArgs args;
    args.packed = true;
    args.block = std::move(block);
    return args;
  }
  size_t size() const { return packed ? block.count : items.size(); }
  size_t item_size(size_t i) const {
    return packed ? block.item_size : items[i].size();
  }
  absl::string_view item(size_t i) const {
    return packed ? block.item(i) : absl::string_view(items[i]);
  }
};

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_FLAT_CODEC_H_
