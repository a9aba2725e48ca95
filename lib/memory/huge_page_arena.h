// File: lib/memory/huge_page_arena.h
// -----------------------------------------------------------------------------
// HugePageArena: one anonymous, private region aligned to 2 MiB that asks
// the kernel for huge pages and says what it got.
//
// Why: fork() copies the parent's page tables. A preload holding N MiB in
// 4 KiB pages makes every fork copy N*256 entries; backed by 2 MiB pages it
// is N/2 entries. The arena is the opt-in way to put large preloaded state
// in such memory.
//
// What it tries, in order, and what it falls back to (never an error):
//   - hugetlb (MAP_HUGETLB), only when asked and /proc/sys/vm/nr_hugepages
//     reserves pages;
//   - transparent huge pages: madvise(MADV_HUGEPAGE) on the aligned region,
//     unless THP is "never" in /sys/kernel/mm/transparent_hugepage/enabled;
//   - plain 4 KiB pages. A region that asked for no huge pages is marked
//     MADV_NOHUGEPAGE so that THP "always" does not give it some anyway.
// backing() and fallback_reason() tell which one it is, and
// AnonHugePagesBytes() how much of it the kernel actually backs with
// transparent huge pages (from /proc/self/smaps): MADV_HUGEPAGE is advice,
// and fragmentation can leave a region partly in small pages.

#ifndef FORKSERVER_LIB_MEMORY_HUGE_PAGE_ARENA_H_
#define FORKSERVER_LIB_MEMORY_HUGE_PAGE_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace forkserver {
namespace memory {

// The x86-64 and arm64 (4 KiB granule) PMD page size; the arena's alignment
// and size granule.
inline constexpr size_t kHugePageSize = size_t{2} << 20;

enum class ArenaBacking {
  kPlain,                 // 4 KiB pages
  kTransparentHugePages,  // MADV_HUGEPAGE accepted
  kHugeTlb,               // MAP_HUGETLB from the reserved pool
};

absl::string_view ArenaBackingName(ArenaBacking backing);

struct ArenaOptions {
  bool transparent_huge_pages = true;
  // Only tried when /proc/sys/vm/nr_hugepages > 0; falls back to THP (if
  // asked) or plain when the pool is too small.
  bool hugetlb = false;
};

class HugePageArena {
 public:
  // A region of at least `bytes` (rounded up to kHugePageSize), zeroed,
  // not yet touched. Errors only for bytes == 0 or when even a plain
  // mapping fails (out of address space / memory).
  static absl::StatusOr<HugePageArena> Create(size_t bytes,
                                              const ArenaOptions& options);

  HugePageArena() = default;
  HugePageArena(HugePageArena&& other) noexcept;
  HugePageArena& operator=(HugePageArena&& other) noexcept;
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;
  ~HugePageArena();

  void* data() const { return data_; }
  size_t size() const { return size_; }
  ArenaBacking backing() const { return backing_; }
  // Empty when the arena got what it asked for; otherwise why not.
  const std::string& fallback_reason() const { return fallback_reason_; }

  // Writes every 4 KiB page so all of it is resident (and, for THP, so the
  // kernel allocates huge pages at fault time).
  void Touch();

  // Sum of AnonHugePages over the /proc/self/smaps mappings that overlap
  // this region. A neighbouring mapping the kernel merged with ours is
  // counted whole, so this can only overstate by such a neighbour.
  absl::StatusOr<size_t> AnonHugePagesBytes() const;

 private:
  void Release();

  void* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // what munmap must cover (== size_ once aligned)
  ArenaBacking backing_ = ArenaBacking::kPlain;
  std::string fallback_reason_;
};

// The selected word of a sysfs choice line: "always [madvise] never" ->
// "madvise". Empty if nothing is bracketed.
std::string SelectedChoice(absl::string_view line);

// /sys/kernel/mm/transparent_hugepage/enabled's selected mode: "always",
// "madvise" or "never"; NotFound when the kernel has no THP.
absl::StatusOr<std::string> TransparentHugePageMode();

// /proc/sys/vm/nr_hugepages: hugetlb pages reserved (0 on most machines).
absl::StatusOr<long> HugeTlbPagesReserved();

// AnonHugePages (bytes) summed over the mappings in `smaps` text that
// overlap [begin, end). Split out so the parser is testable on fixed text.
size_t AnonHugePagesInSmaps(absl::string_view smaps, uintptr_t begin,
                            uintptr_t end);

}  // namespace memory
}  // namespace forkserver

#endif  // FORKSERVER_LIB_MEMORY_HUGE_PAGE_ARENA_H_
