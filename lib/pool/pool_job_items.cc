#include "lib/pool/pool_job_items.h"

namespace forkserver {
namespace internal {

void JobItems::Reset(size_t n) {
  where_.assign(n, kPending);
  segments_.clear();
  errors_.clear();
  done_ = 0;
}

absl::string_view JobItems::value(size_t i) const {
  const Segment& segment = segments_[where_[i]];
  return segment.packed ? segment.block.item(i - segment.first)
                        : absl::string_view(segment.values[i - segment.first]);
}

absl::Status JobItems::Set(size_t first, ItemOutcomes outcomes,
                           std::deque<size_t>* order) {
  const size_t count = outcomes.count();
  const size_t end = first >= where_.size()
                         ? first
                         : std::min(where_.size(), first + count);
  absl::Status first_error;
  auto fail = [&](size_t index, const absl::Status& status) {
    if (index >= end || where_[index] != kPending) return;
    where_[index] = kFailed;
    errors_.emplace(index, status);
    ++done_;
    if (first_error.ok()) first_error = status;
    if (order != nullptr) order->push_back(index);
  };
  if (outcomes.all_failed.has_value()) {
    for (size_t i = first; i < end; ++i) fail(i, *outcomes.all_failed);
    return first_error;
  }
  // The errors first, so the values loop below skips their items.
  for (const auto& [offset, status] : outcomes.errors) {
    if (offset < count) fail(first + offset, status);
  }
  const uint32_t segment = static_cast<uint32_t>(segments_.size());
  bool used = false;
  for (size_t i = first; i < end; ++i) {
    if (where_[i] != kPending) continue;
    where_[i] = segment;
    used = true;
    ++done_;
    if (order != nullptr) order->push_back(i);
  }
  if (used) {
    Segment& kept = segments_.emplace_back();
    kept.first = first;
    kept.packed = outcomes.packed;
    kept.block = std::move(outcomes.block);
    kept.values = std::move(outcomes.values);
  }
  return first_error;
}

}  // namespace internal
}  // namespace forkserver
