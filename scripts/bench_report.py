#!/usr/bin/env python3
"""Prints one latency table from Google Benchmark JSON and JSON lines.

Usage: bench_report.py <benchmark.json> [<more.jsonl> ...]
Rows carry p50/p99 in microseconds and the p50 ratio to the baseline row
(the first row whose name contains "RawFork"), all from the same run.
"""
import json
import sys


def rows_from(path):
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
        for b in data.get("benchmarks", []):
            name = b["name"].split("/min_time")[0]
            yield name, b.get("p50_us"), b.get("p99_us"), b.get("iterations")
    except json.JSONDecodeError:
        for line in text.splitlines():
            if line.strip():
                r = json.loads(line)
                yield r["name"], r["p50_us"], r["p99_us"], r["iterations"]


def main(paths):
    rows = [row for path in paths for row in rows_from(path)]
    baseline = next((r[1] for r in rows if "RawFork" in r[0]), None)
    print(f"{'case':<44} {'p50':>10} {'p99':>10} {'vs raw fork':>12} {'n':>7}")
    for name, p50, p99, n in rows:
        if p50 is None:
            continue
        ratio = f"{p50 / baseline:.2f}x" if baseline else "-"
        print(f"{name:<44} {p50:>8.0f}us {p99:>8.0f}us {ratio:>12} {n:>7}")


if __name__ == "__main__":
    main(sys.argv[1:])
