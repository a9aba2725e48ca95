// File: lib/memory/huge_page_arena.cc

#include "lib/memory/huge_page_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace forkserver {
namespace memory {
namespace {

constexpr size_t kSmallPage = 4096;

absl::StatusOr<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

size_t RoundUp(size_t bytes, size_t granule) {
  return (bytes + granule - 1) / granule * granule;
}

// An anonymous mapping of `size` whose start is aligned to kHugePageSize:
// map size + one huge page, then unmap the unaligned head and the tail.
void* MapAligned(size_t size) {
  const size_t padded = size + kHugePageSize;
  void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = RoundUp(begin, kHugePageSize);
  if (aligned > begin) ::munmap(raw, aligned - begin);
  const uintptr_t tail = aligned + size;
  if (tail < begin + padded) {
    ::munmap(reinterpret_cast<void*>(tail), begin + padded - tail);
  }
  return reinterpret_cast<void*>(aligned);
}

// True when a MAP_HUGETLB mapping is worth trying; otherwise why not.
std::string HugeTlbUnavailable() {
  absl::StatusOr<long> reserved = HugeTlbPagesReserved();
  if (!reserved.ok()) return std::string(reserved.status().message());
  if (*reserved <= 0) return "hugetlb: /proc/sys/vm/nr_hugepages is 0";
  return "";
}

}  // namespace

absl::string_view ArenaBackingName(ArenaBacking backing) {
  switch (backing) {
    case ArenaBacking::kPlain:
      return "plain";
    case ArenaBacking::kTransparentHugePages:
      return "thp";
    case ArenaBacking::kHugeTlb:
      return "hugetlb";
  }
  return "?";
}

std::string SelectedChoice(absl::string_view line) {
  const size_t open = line.find('[');
  const size_t close = line.find(']', open);
  if (open == absl::string_view::npos || close == absl::string_view::npos) {
    return "";
  }
  return std::string(line.substr(open + 1, close - open - 1));
}

absl::StatusOr<std::string> TransparentHugePageMode() {
  absl::StatusOr<std::string> line =
      ReadFile("/sys/kernel/mm/transparent_hugepage/enabled");
  if (!line.ok()) return line.status();
  std::string mode = SelectedChoice(*line);
  if (mode.empty()) {
    return absl::NotFoundError(absl::StrCat("THP mode unreadable: ", *line));
  }
  return mode;
}

absl::StatusOr<long> HugeTlbPagesReserved() {
  absl::StatusOr<std::string> text = ReadFile("/proc/sys/vm/nr_hugepages");
  if (!text.ok()) return text.status();
  long pages = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pages)) {
    return absl::InternalError(absl::StrCat("nr_hugepages: ", *text));
  }
  return pages;
}

size_t AnonHugePagesInSmaps(absl::string_view smaps, uintptr_t begin,
                            uintptr_t end) {
  size_t total_kb = 0;
  bool overlaps = false;
  for (absl::string_view line : absl::StrSplit(smaps, '\n')) {
    // A mapping header starts "lo-hi perms ..." with lowercase hex; field
    // lines start "Name:".
    const size_t dash = line.find('-');
    const size_t space = line.find(' ');
    uint64_t lo = 0, hi = 0;
    if (dash != absl::string_view::npos && space != absl::string_view::npos &&
        dash < space &&
        absl::SimpleHexAtoi(line.substr(0, dash), &lo) &&
        absl::SimpleHexAtoi(line.substr(dash + 1, space - dash - 1), &hi)) {
      overlaps = lo < end && begin < hi;
      continue;
    }
    if (!overlaps || !absl::ConsumePrefix(&line, "AnonHugePages:")) continue;
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumeSuffix(&line, "kB");
    size_t kb = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kb)) {
      total_kb += kb;
    }
  }
  return total_kb * 1024;
}

absl::StatusOr<HugePageArena> HugePageArena::Create(
    size_t bytes, const ArenaOptions& options) {
  if (bytes == 0) return absl::InvalidArgumentError("arena of 0 bytes");
  HugePageArena arena;
  arena.size_ = RoundUp(bytes, kHugePageSize);
  std::string reasons;

  if (options.hugetlb) {
    std::string unavailable = HugeTlbUnavailable();
    if (unavailable.empty()) {
      // hugetlb mappings come aligned to their page size.
      void* p = ::mmap(nullptr, arena.size_, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
      if (p != MAP_FAILED) {
        arena.data_ = p;
        arena.mapped_ = arena.size_;
        arena.backing_ = ArenaBacking::kHugeTlb;
        return arena;
      }
      unavailable = absl::StrCat("hugetlb: mmap(MAP_HUGETLB): ",
                                 std::strerror(errno));
    }
    reasons = unavailable;
  }

  arena.data_ = MapAligned(arena.size_);
  if (arena.data_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap of ", arena.size_, " bytes: ", std::strerror(errno)));
  }
  arena.mapped_ = arena.size_;

  if (options.transparent_huge_pages) {
    absl::StatusOr<std::string> mode = TransparentHugePageMode();
    std::string why_not;
    if (!mode.ok()) {
      why_not = absl::StrCat("THP: ", mode.status().message());
    } else if (*mode == "never") {
      why_not = "THP: /sys/kernel/mm/transparent_hugepage/enabled is never";
    } else if (::madvise(arena.data_, arena.size_, MADV_HUGEPAGE) != 0) {
      why_not = absl::StrCat("THP: madvise(MADV_HUGEPAGE): ",
                             std::strerror(errno));
    }
    if (why_not.empty()) {
      arena.backing_ = ArenaBacking::kTransparentHugePages;
    } else {
      reasons = reasons.empty() ? why_not : absl::StrCat(reasons, "; ", why_not);
    }
  } else {
    // With THP "always" an aligned region would get huge pages unasked;
    // failure only means the kernel has no THP, which is what we want.
    (void)::madvise(arena.data_, arena.size_, MADV_NOHUGEPAGE);
  }
  if (options.hugetlb || options.transparent_huge_pages) {
    arena.fallback_reason_ = std::move(reasons);
  }
  return arena;
}

HugePageArena::HugePageArena(HugePageArena&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      backing_(other.backing_),
      fallback_reason_(std::move(other.fallback_reason_)) {}

HugePageArena& HugePageArena::operator=(HugePageArena&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
    backing_ = other.backing_;
    fallback_reason_ = std::move(other.fallback_reason_);
  }
  return *this;
}

HugePageArena::~HugePageArena() { Release(); }

void HugePageArena::Release() {
  if (data_ != nullptr) ::munmap(data_, mapped_);
  data_ = nullptr;
  size_ = mapped_ = 0;
}

void HugePageArena::Touch() {
  volatile char* bytes = static_cast<volatile char*>(data_);
  for (size_t i = 0; i < size_; i += kSmallPage) bytes[i] = 1;
}

absl::StatusOr<size_t> HugePageArena::AnonHugePagesBytes() const {
  absl::StatusOr<std::string> smaps = ReadFile("/proc/self/smaps");
  if (!smaps.ok()) return smaps.status();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data_);
  return AnonHugePagesInSmaps(*smaps, begin, begin + size_);
}

}  // namespace memory
}  // namespace forkserver
