#!/usr/bin/env python3
"""Start + join latency of a no-op multiprocessing.Process per start method.

The Python side of scripts/bench.sh: same workload as
//tests/bench:start_latency_benchmark, printed as JSON lines
{"name": ..., "p50_us": ..., "p99_us": ..., "iterations": ...}; raw
samples go to $BENCH_SAMPLES_DIR (bench_samples.py).
"""
import json
import multiprocessing
import sys
import time

from bench_samples import dump, quantile


def noop():
    pass


def measure(method, seconds):
    context = multiprocessing.get_context(method)
    # Warm up: the forkserver method launches its server on first use.
    warm = context.Process(target=noop)
    warm.start()
    warm.join()
    sample = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(sample) < 20:
        start = time.perf_counter()
        process = context.Process(target=noop)
        process.start()
        process.join()
        sample.append((time.perf_counter() - start) * 1e6)
        if process.exitcode != 0:
            raise RuntimeError(f"{method}: exit code {process.exitcode}")
    name = f"python multiprocessing {method}"
    dump(name, sample)
    return {
        "name": name,
        "p50_us": quantile(sample, 0.5),
        "p99_us": quantile(sample, 0.99),
        "iterations": len(sample),
    }


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    for method in ("fork", "forkserver", "spawn"):
        print(json.dumps(measure(method, seconds)), flush=True)
