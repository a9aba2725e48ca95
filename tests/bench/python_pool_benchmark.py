#!/usr/bin/env python3
"""Pool throughput and round trip in Python: multiprocessing.Pool or
billiard.Pool on the workloads of //tests/bench:pool_benchmark.

Prints JSON lines {"name", "tasks_per_s" | "p50_us", "p99_us"}; round-trip
samples go to $BENCH_SAMPLES_DIR (bench_samples.py).
Usage: python_pool_benchmark.py [seconds per case] [multiprocessing|billiard]

Shutdown: the pool is closed and joined (every result has been received by
then), never terminated. billiard's terminate() (what `with pool:` calls)
takes the task queue's read lock for good, then SIGTERMs the workers, whose
SIGTERM is a Python-level handler: a worker idle in sem_wait() on that lock
when the signal lands just before it blocks never runs the handler, never
exits, and terminate()'s join() waits for it for ever (about one run in
three on a 2-core VM, at 0% CPU). Closing lets every worker leave its loop
on the end-of-tasks sentinel instead.
"""
import json
import sys
import time

from bench_samples import dump, quantile

PROCESSES = 2
ITEMS = 20000


def noop(x):
    return x


def throughput(pool, chunksize, seconds):
    items = list(range(ITEMS))
    done, elapsed = 0, 0.0
    while elapsed < seconds or done == 0:
        start = time.perf_counter()
        out = pool.map(noop, items, chunksize) if chunksize else pool.map(noop, items)
        elapsed += time.perf_counter() - start
        assert len(out) == ITEMS
        done += ITEMS
    return done / elapsed


def round_trip(pool, seconds):
    sample = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline or len(sample) < 100:
        i += 1
        start = time.perf_counter()
        pool.apply_async(noop, (i,)).get()
        sample.append((time.perf_counter() - start) * 1e6)
    return sample


def run(label, pool, seconds):
    try:
        pool.map(noop, range(100))  # Warm up.
        print(json.dumps({"name": f"{label} map chunksize=1",
                          "tasks_per_s": throughput(pool, 1, seconds)}), flush=True)
        print(json.dumps({"name": f"{label} map default chunks",
                          "tasks_per_s": throughput(pool, None, seconds)}), flush=True)
        sample = round_trip(pool, seconds)
        name = f"{label} apply_async round trip"
        dump(name, sample)
        print(json.dumps({"name": name, "p50_us": quantile(sample, 0.5),
                          "p99_us": quantile(sample, 0.99),
                          "iterations": len(sample)}), flush=True)
    finally:
        pool.close()
        pool.join()


def billiard_pool():
    import billiard
    import billiard.pool
    # billiard 4.1 credits every chunk of a map to the first worker that
    # acknowledged the job, so another worker's "results consumed" counter
    # lags, and on exit that worker polls it for up to 300 x 0.1 s
    # (Worker._ensure_messages_consumed): a 30 s stall on every close.
    # Everything has been consumed when we close, so skip that wait. Set
    # before the pool forks: the workers read it.
    billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = 0
    return f"billiard {billiard.__version__}", billiard.Pool(PROCESSES)


def main(args):
    seconds = float(args[0]) if args else 3.0
    library = args[1] if len(args) > 1 else "multiprocessing"
    if library == "multiprocessing":
        import multiprocessing
        run("python multiprocessing",
            multiprocessing.get_context("fork").Pool(PROCESSES), seconds)
    elif library == "billiard":
        try:
            label, pool = billiard_pool()
        except ImportError:
            print(json.dumps({"name": "billiard",
                              "error": "python3-billiard not installed"}))
            return
        run(label, pool, seconds)
    else:
        sys.exit(f"unknown library {library!r}: multiprocessing or billiard")


if __name__ == "__main__":
    main(sys.argv[1:])
