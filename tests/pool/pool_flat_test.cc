// The flat codec (lib/pool/flat_codec.h), the job's item store
// (lib/pool/pool_job_items.h), and a Pool's results through the packed
// transport against the per-item one, over every start method: same
// values bit for bit, edge values (NaN, -0.0, limits), sizes that are not
// a multiple of the chunk, mixed sizes and failures inside one chunk.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "lib/pool/flat_codec.h"
#include "lib/pool/pool_job_items.h"
#include "tests/pool/pool_fixture.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

// ---- Tasks.

absl::StatusOr<double> NegateDouble(const double& x, TaskContext&) {
  return -x;
}
FORKSERVER_REGISTER_TASK(NegateDouble);

absl::StatusOr<int64_t> Int64Identity(const int64_t& x, TaskContext&) {
  return x;
}
FORKSERVER_REGISTER_TASK(Int64Identity);

absl::StatusOr<uint8_t> NextByte(const uint8_t& x, TaskContext&) {
  return static_cast<uint8_t>(x + 1);
}
FORKSERVER_REGISTER_TASK(NextByte);

absl::StatusOr<int> FailOnMultipleOf5(const int& x, TaskContext&) {
  if (x % 5 == 0) return absl::InvalidArgumentError(absl::StrCat("item ", x));
  return x * 3;
}
FORKSERVER_REGISTER_TASK(FailOnMultipleOf5);

// x % 4 values: results of different sizes in one chunk.
absl::StatusOr<std::vector<double>> Spread(const int& x, TaskContext&) {
  std::vector<double> out;
  for (int i = 0; i < x % 4; ++i) out.push_back(x + i / 10.0);
  return out;
}
FORKSERVER_REGISTER_TASK(Spread);

absl::StatusOr<std::string> Reverse(const std::string& s, TaskContext&) {
  return std::string(s.rbegin(), s.rend());
}
FORKSERVER_REGISTER_TASK(Reverse);

absl::StatusOr<int> Sum3(const int& a, const int& b, const int& c,
                         TaskContext&) {
  return a + b + c;
}
FORKSERVER_REGISTER_TASK(Sum3);

template <typename T>
std::string BytesOf(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(T));
}

std::vector<double> EdgeDoubles() {
  using L = std::numeric_limits<double>;
  return {0.0,         -0.0,         1.0,          -1.0,
          L::quiet_NaN(), -L::quiet_NaN(), L::infinity(), -L::infinity(),
          L::min(),    L::max(),     L::lowest(),  L::denorm_min(),
          L::epsilon(), 3.5};
}

// ---- The flat codec.

TEST(FlatCodecTest, RoundTripsEdgeValuesBitForBit) {
  std::vector<double> doubles = EdgeDoubles();
  std::string block = internal::PackFlat(doubles);
  EXPECT_EQ(block.size(), doubles.size() * sizeof(double));
  std::vector<double> back;
  ASSERT_OK(internal::UnpackFlat(block, &back));
  // NaN != NaN: compare the bytes.
  EXPECT_EQ(BytesOf(back), BytesOf(doubles));
  EXPECT_TRUE(std::isnan(back[4]));
  EXPECT_TRUE(std::signbit(back[1]));

  std::vector<int64_t> ints = {0, -1, std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max()};
  std::vector<int64_t> ints_back;
  ASSERT_OK(internal::UnpackFlat(internal::PackFlat(ints), &ints_back));
  EXPECT_EQ(ints_back, ints);

  std::vector<uint8_t> bytes = {0, 1, 255};
  std::vector<uint8_t> bytes_back;
  ASSERT_OK(internal::UnpackFlat(internal::PackFlat(bytes), &bytes_back));
  EXPECT_EQ(bytes_back, bytes);
}

TEST(FlatCodecTest, EmptyAndOneItem) {
  std::vector<float> none;
  EXPECT_EQ(internal::PackFlat(none), "");
  std::vector<float> back = {1.0f};
  ASSERT_OK(internal::UnpackFlat("", &back));  // Appends nothing.
  EXPECT_EQ(back, (std::vector<float>{1.0f}));
  std::vector<float> one = {-2.5f};
  back.clear();
  ASSERT_OK(internal::UnpackFlat(internal::PackFlat(one), &back));
  EXPECT_EQ(back, one);
}

TEST(FlatCodecTest, RejectsPartialValuesAndAppendsNothing) {
  std::vector<int32_t> values = {7};
  EXPECT_THAT(internal::UnpackFlat(std::string(5, 'x'), &values),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a whole number of 4-byte values")));
  EXPECT_EQ(values, (std::vector<int32_t>{7}));
}

TEST(FlatCodecTest, CheckBlockCatchesMismatchAndOverflow) {
  EXPECT_OK(internal::CheckBlock(0, 0, 0));
  EXPECT_OK(internal::CheckBlock(0, 0, 1000));  // Empty items.
  EXPECT_OK(internal::CheckBlock(12, 4, 3));
  EXPECT_THAT(internal::CheckBlock(11, 4, 3),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(internal::CheckBlock(0, uint64_t{1} << 33, uint64_t{1} << 33),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overflows")));
}

TEST(FlatCodecTest, VectorCodecsOfEveryElementKind) {
  std::vector<double> doubles = EdgeDoubles();
  std::string encoded = TaskCodec<std::vector<double>>::Encode(doubles);
  EXPECT_EQ(encoded, BytesOf(doubles));  // Flat: no per-element framing.
  std::vector<double> back = {42.0};  // Decode replaces.
  ASSERT_OK(TaskCodec<std::vector<double>>::Decode(encoded, &back));
  EXPECT_EQ(BytesOf(back), BytesOf(doubles));
  EXPECT_THAT(TaskCodec<std::vector<double>>::Decode("abc", &back),
              StatusIs(absl::StatusCode::kInvalidArgument));

  // bool and non-arithmetic elements keep the length-prefixed codec.
  std::vector<bool> flags = {true, false, true};
  std::vector<bool> flags_back;
  ASSERT_OK(TaskCodec<std::vector<bool>>::Decode(
      TaskCodec<std::vector<bool>>::Encode(flags), &flags_back));
  EXPECT_EQ(flags_back, flags);
  std::vector<std::string> strings = {"", "a", std::string(300, 'z')};
  std::vector<std::string> strings_back;
  ASSERT_OK(TaskCodec<std::vector<std::string>>::Decode(
      TaskCodec<std::vector<std::string>>::Encode(strings), &strings_back));
  EXPECT_EQ(strings_back, strings);
}

// ---- The item store.

internal::ItemOutcomes Block(std::vector<int32_t> values) {
  internal::ItemOutcomes outcomes;
  outcomes.packed = true;
  outcomes.block.data = BytesOf(values);
  outcomes.block.item_size = sizeof(int32_t);
  outcomes.block.count = values.size();
  return outcomes;
}

int32_t IntAt(const internal::JobItems& items, size_t i) {
  int32_t value;
  absl::string_view bytes = items.value(i);
  EXPECT_EQ(bytes.size(), sizeof(value));
  std::memcpy(&value, bytes.data(), sizeof(value));
  return value;
}

TEST(JobItemsTest, BlocksStringsErrorsAndDuplicates) {
  internal::JobItems items;
  items.Reset(7);
  EXPECT_EQ(items.size(), 7u);
  std::deque<size_t> order;
  ASSERT_OK(items.Set(3, Block({30, 40}), &order));
  EXPECT_EQ(order, (std::deque<size_t>{3, 4}));
  // A late duplicate for item 4 and a new item 5: only 5 is taken.
  ASSERT_OK(items.Set(4, Block({-1, 50}), nullptr));
  EXPECT_EQ(IntAt(items, 4), 40);
  EXPECT_EQ(IntAt(items, 5), 50);
  internal::ItemOutcomes strings;
  strings.values = {"zero", "", "two"};
  strings.errors.emplace_back(1, absl::InternalError("one failed"));
  EXPECT_THAT(items.Set(0, std::move(strings), nullptr),
              StatusIs(absl::StatusCode::kInternal, "one failed"));
  EXPECT_EQ(items.value(0), "zero");
  EXPECT_FALSE(items.ok(1));
  EXPECT_TRUE(items.done(1));
  EXPECT_EQ(items.error(1).message(), "one failed");
  EXPECT_FALSE(items.done(6));
  EXPECT_EQ(items.done_count(), 6u);
  // All-failed covering done items and one past the end: only 6 is set.
  EXPECT_THAT(items.Set(5, internal::ItemOutcomes::AllFailed(
                               3, absl::CancelledError("late")),
                        nullptr),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(items.done_count(), 7u);
  EXPECT_EQ(IntAt(items, 5), 50);
  EXPECT_FALSE(items.ok(6));
}

TEST(JobItemsTest, VisitRunsMergesEachBlocksItems) {
  internal::JobItems items;
  items.Reset(6);
  ASSERT_OK(items.Set(2, Block({2, 3, 4, 5}), nullptr));
  internal::ItemOutcomes strings;
  strings.values = {"ab", "c"};
  ASSERT_OK(items.Set(0, std::move(strings), nullptr));
  std::vector<std::tuple<std::string, size_t, size_t>> runs;
  ASSERT_OK(items.VisitRuns(
      [&](absl::string_view block, size_t item_size, size_t count) {
        runs.emplace_back(std::string(block), item_size, count);
        return absl::OkStatus();
      }));
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0], std::make_tuple(std::string("ab"), size_t{2}, size_t{1}));
  EXPECT_EQ(runs[1], std::make_tuple(std::string("c"), size_t{1}, size_t{1}));
  EXPECT_EQ(runs[2], std::make_tuple(BytesOf(std::vector<int32_t>{2, 3, 4, 5}),
                                     size_t{4}, size_t{4}));
}

// ---- Through a Pool, every start method.

using PoolFlatTest = testing::PoolFixture;

CallOptions Chunked(std::optional<int> chunksize) {
  CallOptions options;
  options.chunksize = chunksize;
  return options;
}

// Map<double> (arguments packed, results packed) against the byte-level
// API with one item per chunk (arguments as one string each) and against
// the values computed here, bit for bit.
TEST_P(PoolFlatTest, ArithmeticMapMatchesThePerItemPath) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  std::vector<double> edges = EdgeDoubles();
  std::vector<double> all;
  for (int i = 0; i < 1001; ++i) all.push_back(edges[i % edges.size()] * (i % 3 ? 1 : 0.5));
  for (size_t size : {size_t{0}, size_t{1}, size_t{7}, size_t{13}, size_t{1001}}) {
    std::vector<double> inputs(all.begin(), all.begin() + size);
    std::vector<double> expected;
    std::vector<std::string> encoded;
    for (double x : inputs) {
      expected.push_back(-x);
      encoded.push_back(TaskCodec<double>::Encode(x));
    }
    absl::StatusOr<MapResult> per_item =
        pool->MapAsyncBytes("NegateDouble", encoded, Chunked(1));
    ASSERT_OK(per_item.status());
    absl::StatusOr<std::vector<double>> reference =
        per_item->GetAs<double>(absl::Seconds(60));
    ASSERT_OK(reference.status());
    EXPECT_EQ(BytesOf(*reference), BytesOf(expected)) << "size " << size;
    for (std::optional<int> chunksize :
         {std::optional<int>(), std::optional<int>(1), std::optional<int>(4),
          std::optional<int>(1000)}) {
      absl::StatusOr<std::vector<double>> negated =
          pool->Map<double>("NegateDouble", inputs, Chunked(chunksize));
      ASSERT_OK(negated.status());
      EXPECT_EQ(BytesOf(*negated), BytesOf(expected))
          << "size " << size << " chunksize " << chunksize.value_or(0);
    }
    // The byte-level results of a packed map are the per-item encodings.
    absl::StatusOr<MapResult> packed = pool->MapAsync("NegateDouble", inputs);
    ASSERT_OK(packed.status());
    absl::StatusOr<std::vector<std::string>> bytes = packed->Get(absl::Seconds(60));
    ASSERT_OK(bytes.status());
    ASSERT_EQ(bytes->size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ((*bytes)[i], TaskCodec<double>::Encode(expected[i])) << i;
    }
  }
  std::vector<int64_t> limits = {0, -1, 1, std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max()};
  EXPECT_EQ(*pool->Map<int64_t>("Int64Identity", limits, Chunked(2)), limits);
  std::vector<uint8_t> bytes = {0, 7, 254, 255};
  EXPECT_EQ(*pool->Map<uint8_t>("NextByte", bytes),
            (std::vector<uint8_t>{1, 8, 255, 0}));
  // Decoding as a type of another size is an error, not garbage.
  absl::StatusOr<MapResult> ints = pool->MapAsync("Int64Identity", limits);
  ASSERT_OK(ints.status());
  EXPECT_THAT(ints->GetAs<int32_t>(absl::Seconds(60)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  pool->Close();
  ASSERT_OK(pool->Join());
}

// Failures inside a chunk: Imap yields each item's own outcome, Map fails
// with an item's error.
TEST_P(PoolFlatTest, FailuresInsideAChunkKeepTheirItems) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  std::vector<int> inputs;
  for (int i = 1; i <= 23; ++i) inputs.push_back(i);
  absl::StatusOr<ImapIterator> it =
      pool->Imap("FailOnMultipleOf5", inputs, Chunked(10));
  ASSERT_OK(it.status());
  for (int x : inputs) {
    absl::StatusOr<std::optional<int>> next = it->NextAs<int>(absl::Seconds(60));
    if (x % 5 == 0) {
      EXPECT_THAT(next.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                          absl::StrCat("item ", x)));
    } else {
      ASSERT_OK(next.status());
      EXPECT_EQ(next->value(), x * 3);
    }
  }
  EXPECT_FALSE(it->NextAs<int>(absl::Seconds(60))->has_value());
  EXPECT_THAT(pool->Map<int>("FailOnMultipleOf5", inputs).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item ")));
  pool->Close();
  ASSERT_OK(pool->Join());
}

// Results of different sizes in one chunk, strings of one size and of
// several, tuples: each value as a per-item Apply gives it.
TEST_P(PoolFlatTest, MixedSizesStringsAndTuples) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  std::vector<int> inputs;
  for (int i = 0; i < 50; ++i) inputs.push_back(i);
  absl::StatusOr<std::vector<std::vector<double>>> spread =
      pool->Map<std::vector<double>>("Spread", inputs, Chunked(7));
  ASSERT_OK(spread.status());
  ASSERT_EQ(spread->size(), inputs.size());
  for (int x : inputs) {
    absl::StatusOr<std::vector<double>> one =
        pool->Apply<std::vector<double>>("Spread", x);
    ASSERT_OK(one.status());
    EXPECT_EQ((*spread)[x], *one) << x;
    EXPECT_EQ((*spread)[x].size(), static_cast<size_t>(x % 4));
  }
  for (bool same_length : {true, false}) {
    std::vector<std::string> words;
    std::vector<std::string> expected;
    for (int i = 0; i < 40; ++i) {
      std::string word = same_length ? absl::StrCat("w", 100 + i)
                                     : std::string(static_cast<size_t>(i % 6), 'a' + i % 26) + "!";
      words.push_back(word);
      expected.push_back(std::string(word.rbegin(), word.rend()));
    }
    for (std::optional<int> chunksize : {std::optional<int>(), std::optional<int>(3)}) {
      EXPECT_EQ(*pool->Map<std::string>("Reverse", words, Chunked(chunksize)), expected)
          << same_length;
    }
  }
  std::vector<std::tuple<int, int, int>> triples;
  std::vector<int> sums;
  for (int i = 0; i < 100; ++i) {
    triples.emplace_back(i, -2 * i, std::numeric_limits<int>::max() / 2);
    sums.push_back(i - 2 * i + std::numeric_limits<int>::max() / 2);
  }
  EXPECT_EQ(*pool->Starmap<int>("Sum3", triples, Chunked(7)), sums);
  // map_callback sees what Get() returns.
  std::vector<std::string> seen;
  absl::Notification called;
  CallOptions with_callback = Chunked(6);
  with_callback.map_callback = [&](const std::vector<std::string>& values) {
    seen = values;
    called.Notify();
  };
  absl::StatusOr<MapResult> mapped =
      pool->MapAsync("NegateDouble", std::vector<double>{1, 2, 3, 4, 5, 6, 7},
                     with_callback);
  ASSERT_OK(mapped.status());
  absl::StatusOr<std::vector<std::string>> got = mapped->Get(absl::Seconds(60));
  ASSERT_OK(got.status());
  ASSERT_TRUE(called.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_EQ(seen, *got);
  pool->Close();
  ASSERT_OK(pool->Join());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PoolFlatTest,
                         testing::EveryStartMethod(), testing::MethodTestName);

}  // namespace
}  // namespace forkserver
