// The benchmarks' fork server with a given number of warm workers.

#ifndef FORKSERVER_TESTS_BENCH_WARM_SERVER_H_
#define FORKSERVER_TESTS_BENCH_WARM_SERVER_H_

namespace forkserver::bench {

// Makes the application's fork server keep `warm` warm workers: when the
// running server keeps another number, the option is set and the server
// stopped (the next request launches it anew). False when the server
// cannot be reached or stopped. Does not wait for the pool to fill.
bool UseWarmWorkers(int warm);

}  // namespace forkserver::bench

#endif  // FORKSERVER_TESTS_BENCH_WARM_SERVER_H_
