// File: lib/pool/pool_job_items.h
// -----------------------------------------------------------------------------
// The outcomes of a job's items, kept as they arrived: a result message's
// values stay together (a block of same-size values, or its list of
// strings), and each item only records which of them holds it. A chunk of
// thousands of ints is then stored, and read back by MapResult::GetAs, as
// one block, with no allocation or Status per item. Internal to the
// library; not thread-safe (JobState's mutex guards it).

#ifndef FORKSERVER_LIB_POOL_POOL_JOB_ITEMS_H_
#define FORKSERVER_LIB_POOL_POOL_JOB_ITEMS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lib/pool/flat_codec.h"

namespace forkserver {
namespace internal {

// The outcomes of `count()` consecutive items: all failed with one status,
// or values (a block, or one string each) with some items failed.
struct ItemOutcomes {
  std::optional<absl::Status> all_failed;
  size_t failed_count = 0;  // With all_failed: how many items.
  bool packed = false;
  ItemBlock block;
  std::vector<std::string> values;
  // (offset from the first item, error); those items' values are ignored.
  std::vector<std::pair<size_t, absl::Status>> errors;

  static ItemOutcomes AllFailed(size_t count, absl::Status status) {
    ItemOutcomes outcomes;
    outcomes.all_failed = std::move(status);
    outcomes.failed_count = count;
    return outcomes;
  }
  size_t count() const {
    if (all_failed.has_value()) return failed_count;
    return packed ? block.count : values.size();
  }
};

class JobItems {
 public:
  // `n` items, none done.
  void Reset(size_t n);

  size_t size() const { return where_.size(); }
  size_t done_count() const { return done_; }
  bool done(size_t i) const { return where_[i] != kPending; }
  bool ok(size_t i) const { return where_[i] < kFailed; }
  // The value of an item that succeeded.
  absl::string_view value(size_t i) const;
  // The error of an item that failed.
  const absl::Status& error(size_t i) const { return errors_.at(i); }

  // Sets items first, first + 1, ... from `outcomes`, except those already
  // done (the first outcome stays) and those past size(). Appends the
  // indices it set to `order` when given. Returns the first error among
  // the items it set (OK if none).
  absl::Status Set(size_t first, ItemOutcomes outcomes,
                   std::deque<size_t>* order);

  // With every item done and successful: calls
  // visit(block, item_size, count) for runs of consecutive items in order,
  // each run `count` values of `item_size` bytes back to back in `block`
  // (a run of values kept as separate strings is one item each). Stops at
  // the first error `visit` returns.
  template <typename Visit>
  absl::Status VisitRuns(Visit&& visit) const {
    for (size_t i = 0; i < where_.size();) {
      const Segment& segment = segments_[where_[i]];
      if (!segment.packed) {
        const std::string& value = segment.values[i - segment.first];
        absl::Status visited = visit(absl::string_view(value), value.size(), 1);
        if (!visited.ok()) return visited;
        ++i;
        continue;
      }
      size_t end = i + 1;
      while (end < where_.size() && where_[end] == where_[i]) ++end;
      const size_t size = segment.block.item_size;
      absl::Status visited = visit(
          absl::string_view(segment.block.data).substr((i - segment.first) * size,
                                                       (end - i) * size),
          size, end - i);
      if (!visited.ok()) return visited;
      i = end;
    }
    return absl::OkStatus();
  }

 private:
  static constexpr uint32_t kPending = UINT32_MAX;
  static constexpr uint32_t kFailed = UINT32_MAX - 1;

  struct Segment {
    size_t first = 0;
    bool packed = false;
    ItemBlock block;
    std::vector<std::string> values;
  };

  // Per item: kPending, kFailed, or the index of the segment holding it.
  std::vector<uint32_t> where_;
  std::vector<Segment> segments_;
  absl::flat_hash_map<size_t, absl::Status> errors_;
  size_t done_ = 0;
};

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_JOB_ITEMS_H_
