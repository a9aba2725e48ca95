// Raw latency samples for scripts/bench.sh's plots: when BENCH_SAMPLES_DIR
// is set, a benchmark writes each sample it measured (microseconds, one a
// line, after a "# <name>" header line) to <dir>/<slug of name>.txt. The
// report matches files to result rows by that header, so slugs need not
// agree across languages. Google Benchmark calls a benchmark several times
// while it sizes the run; every call truncates the file, so the file holds
// the reported (last) run.

#ifndef FORKSERVER_TESTS_BENCH_BENCH_SAMPLES_H_
#define FORKSERVER_TESTS_BENCH_BENCH_SAMPLES_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace forkserver {
namespace bench {

void DumpSamples(const std::string& name, const std::vector<double>& micros);
void DumpSamples(const std::string& name,
                 const std::vector<absl::Duration>& sample);

// Nearest-rank quantile (0..1) in the sample's unit; 0 for an empty one.
double QuantileOf(std::vector<double> sample, double q);

}  // namespace bench
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_BENCH_BENCH_SAMPLES_H_
