#include "tools/latency_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace forkserver {

absl::Duration Quantile(std::vector<absl::Duration> sample, double q) {
  if (sample.empty()) return absl::ZeroDuration();
  std::sort(sample.begin(), sample.end());
  size_t rank = static_cast<size_t>(std::ceil(q * sample.size()));
  rank = std::clamp<size_t>(rank, 1, sample.size());
  return sample[rank - 1];
}

std::string FormatLatency(absl::Duration d) {
  const double us = absl::ToDoubleMicroseconds(d);
  if (us < 1000) return absl::StrFormat("%.0f us", us);
  if (us < 1e6) return absl::StrFormat("%.2f ms", us / 1e3);
  return absl::StrFormat("%.2f s", us / 1e6);
}

}  // namespace forkserver
