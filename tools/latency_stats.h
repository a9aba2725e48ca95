// File: tools/latency_stats.h
// -----------------------------------------------------------------------------
// Percentiles of a sample of durations, for the demo and the CLI's bench.

#ifndef FORKSERVER_TOOLS_LATENCY_STATS_H_
#define FORKSERVER_TOOLS_LATENCY_STATS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace forkserver {

// The q-quantile (0..1) by nearest rank; zero for an empty sample.
absl::Duration Quantile(std::vector<absl::Duration> sample, double q);

// "412 us", "3.1 ms", "12.40 s": three significant digits, a fixed unit
// per magnitude, for tables.
std::string FormatLatency(absl::Duration d);

}  // namespace forkserver

#endif  // FORKSERVER_TOOLS_LATENCY_STATS_H_
