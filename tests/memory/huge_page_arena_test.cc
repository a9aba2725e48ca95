// HugePageArena: alignment, rounding, fallbacks and what it reports. Whether
// the kernel hands out huge pages depends on the machine (THP mode,
// fragmentation), so the tests check consistency with what the machine
// says, never that huge pages were obtained.

#include "lib/memory/huge_page_arena.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace forkserver {
namespace memory {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

bool IsMapped(void* p, size_t bytes) {
  std::vector<unsigned char> pages(bytes / 4096 + 1);
  return ::mincore(p, bytes, pages.data()) == 0;
}

TEST(HugePageArenaTest, RejectsEmpty) {
  EXPECT_FALSE(HugePageArena::Create(0, ArenaOptions{}).ok());
}

TEST(HugePageArenaTest, AlignedRoundedZeroedAndWritable) {
  ArenaOptions options;
  options.transparent_huge_pages = false;
  absl::StatusOr<HugePageArena> arena = HugePageArena::Create(3 * kMiB, options);
  ASSERT_TRUE(arena.ok()) << arena.status();
  EXPECT_EQ(arena->size(), 4 * kMiB);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(arena->data()) % kHugePageSize, 0u);
  const char* bytes = static_cast<const char*>(arena->data());
  EXPECT_EQ(bytes[0], 0);
  EXPECT_EQ(bytes[arena->size() - 1], 0);
  arena->Touch();
  std::memset(arena->data(), 7, arena->size());
  EXPECT_EQ(bytes[arena->size() - 1], 7);
}

TEST(HugePageArenaTest, PlainWhenNotAskedAndHasNoHugePages) {
  ArenaOptions options;
  options.transparent_huge_pages = false;
  absl::StatusOr<HugePageArena> arena = HugePageArena::Create(8 * kMiB, options);
  ASSERT_TRUE(arena.ok()) << arena.status();
  EXPECT_EQ(arena->backing(), ArenaBacking::kPlain);
  EXPECT_TRUE(arena->fallback_reason().empty());
  arena->Touch();
  // MADV_NOHUGEPAGE keeps THP "always" away too.
  absl::StatusOr<size_t> huge = arena->AnonHugePagesBytes();
  ASSERT_TRUE(huge.ok()) << huge.status();
  EXPECT_EQ(*huge, 0u);
}

TEST(HugePageArenaTest, ThpBackingAgreesWithTheKernelMode) {
  absl::StatusOr<HugePageArena> arena =
      HugePageArena::Create(8 * kMiB, ArenaOptions{});
  ASSERT_TRUE(arena.ok()) << arena.status();
  absl::StatusOr<std::string> mode = TransparentHugePageMode();
  if (!mode.ok() || *mode == "never") {
    EXPECT_EQ(arena->backing(), ArenaBacking::kPlain);
    EXPECT_NE(arena->fallback_reason(), "");
  } else {
    EXPECT_EQ(arena->backing(), ArenaBacking::kTransparentHugePages)
        << arena->fallback_reason();
    EXPECT_EQ(arena->fallback_reason(), "");
  }
  arena->Touch();
  absl::StatusOr<size_t> huge = arena->AnonHugePagesBytes();
  ASSERT_TRUE(huge.ok()) << huge.status();
  EXPECT_EQ(*huge % kHugePageSize, 0u);
}

TEST(HugePageArenaTest, HugeTlbFallsBackWithAReasonWhenNoneReserved) {
  absl::StatusOr<long> reserved = HugeTlbPagesReserved();
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  if (*reserved > 0) GTEST_SKIP() << "this machine reserves hugetlb pages";
  ArenaOptions options;
  options.hugetlb = true;
  options.transparent_huge_pages = false;
  absl::StatusOr<HugePageArena> arena = HugePageArena::Create(2 * kMiB, options);
  ASSERT_TRUE(arena.ok()) << arena.status();
  EXPECT_EQ(arena->backing(), ArenaBacking::kPlain);
  EXPECT_NE(arena->fallback_reason().find("nr_hugepages"), std::string::npos)
      << arena->fallback_reason();
}

TEST(HugePageArenaTest, MoveTransfersOwnershipAndDestructionUnmaps) {
  absl::StatusOr<HugePageArena> arena =
      HugePageArena::Create(2 * kMiB, ArenaOptions{});
  ASSERT_TRUE(arena.ok()) << arena.status();
  void* data = arena->data();
  const size_t size = arena->size();
  {
    HugePageArena moved = *std::move(arena);
    EXPECT_EQ(moved.data(), data);
    EXPECT_EQ(arena->data(), nullptr);
    EXPECT_EQ(arena->size(), 0u);
    EXPECT_TRUE(IsMapped(data, size));
  }
  EXPECT_FALSE(IsMapped(data, size));
}

TEST(SelectedChoiceTest, ReadsTheBracketedWord) {
  EXPECT_EQ(SelectedChoice("always [madvise] never\n"), "madvise");
  EXPECT_EQ(SelectedChoice("[always] madvise never"), "always");
  EXPECT_EQ(SelectedChoice("always madvise never"), "");
}

TEST(AnonHugePagesInSmapsTest, SumsOnlyOverlappingMappings) {
  const char* smaps =
      "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \n"
      "Size:               4096 kB\n"
      "AnonHugePages:      2048 kB\n"
      "7f0000400000-7f0000800000 rw-p 00000000 00:00 0 \n"
      "AnonHugePages:      4096 kB\n"
      "7f0000800000-7f0000a00000 r--p 00000000 08:01 42 /usr/lib/libc.so.6\n"
      "AnonHugePages:         0 kB\n";
  EXPECT_EQ(AnonHugePagesInSmaps(smaps, 0x7f0000000000, 0x7f0000400000),
            2048u * 1024);
  EXPECT_EQ(AnonHugePagesInSmaps(smaps, 0x7f0000200000, 0x7f0000600000),
            6144u * 1024);
  EXPECT_EQ(AnonHugePagesInSmaps(smaps, 0x7f0000a00000, 0x7f0000b00000), 0u);
}

}  // namespace
}  // namespace memory
}  // namespace forkserver
