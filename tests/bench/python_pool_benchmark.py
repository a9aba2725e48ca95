#!/usr/bin/env python3
"""Pool throughput and round trip in Python: multiprocessing.Pool and
billiard.Pool on the workloads of //tests/bench:pool_benchmark.

Prints JSON lines {"name", "tasks_per_s" | "p50_us", "p99_us"}.
Usage: python_pool_benchmark.py [seconds per case]
"""
import json
import sys
import time

PROCESSES = 2
ITEMS = 20000


def noop(x):
    return x


def quantile(sample, q):
    sample = sorted(sample)
    rank = max(1, min(len(sample), int(-(-q * len(sample) // 1))))
    return sample[rank - 1]


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
        sample.append(time.perf_counter() - start)
    return quantile(sample, 0.5) * 1e6, quantile(sample, 0.99) * 1e6


def run(label, pool, seconds):
    with pool:
        pool.map(noop, range(100))  # Warm up.
        print(json.dumps({"name": f"{label} map chunksize=1",
                          "tasks_per_s": throughput(pool, 1, seconds)}), flush=True)
        print(json.dumps({"name": f"{label} map default chunks",
                          "tasks_per_s": throughput(pool, None, seconds)}), flush=True)
        p50, p99 = round_trip(pool, seconds)
        print(json.dumps({"name": f"{label} apply_async round trip",
                          "p50_us": p50, "p99_us": p99}), flush=True)


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    import multiprocessing
    run("python multiprocessing", multiprocessing.get_context("fork").Pool(PROCESSES), seconds)
    try:
        import billiard
    except ImportError:
        print(json.dumps({"name": "billiard", "error": "python3-billiard not installed"}))
    else:
        run(f"billiard {billiard.__version__}", billiard.Pool(PROCESSES), seconds)
