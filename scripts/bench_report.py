#!/usr/bin/env python3
"""Prints one table from Google Benchmark JSON files and JSON lines.

Usage: bench_report.py [--pool] <file> [<file> ...]

Latency mode (default): rows carry p50/p99 in microseconds and the p50
ratio to the baseline row (the first whose name contains "RawFork").
Pool mode: throughput rows (tasks/s, and our rate over each Python one)
and round-trip rows (p50/p99 us), all from the same run.
"""
import json
import sys


def records(path):
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
        for b in data.get("benchmarks", []):
            b = dict(b)
            b["name"] = b["name"].split("/min_time")[0]
            yield b
    except json.JSONDecodeError:
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)


def latency(rows):
    baseline = next((r["p50_us"] for r in rows if "RawFork" in r["name"]), None)
    print(f"{'case':<44} {'p50':>10} {'p99':>10} {'vs raw fork':>12} {'n':>7}")
    for r in rows:
        if "p50_us" not in r:
            continue
        ratio = f"{r['p50_us'] / baseline:.2f}x" if baseline else "-"
        n = r.get("iterations", "")
        print(f"{r['name']:<44} {r['p50_us']:>8.0f}us {r['p99_us']:>8.0f}us "
              f"{ratio:>12} {n:>7}")


def pool(rows):
    ours = {r["name"]: r for r in rows if r["name"].startswith("BM_")}
    chunk1 = ours.get("BM_MapChunksize1", {}).get("tasks_per_s")
    default = ours.get("BM_MapDefaultChunks", {}).get("tasks_per_s")
    rtt = ours.get("BM_ApplyRoundTrip", {}).get("p50_us")
    print(f"{'case':<48} {'tasks/s':>12} {'p50':>9} {'p99':>9} {'ours vs this':>13}")
    for r in rows:
        name = r["name"]
        if "error" in r:
            print(f"{name:<48} {r['error']}")
            continue
        if "tasks_per_s" in r:
            mine = default if "default" in name or "Default" in name else chunk1
            ratio = "" if name.startswith("BM_") else f"{mine / r['tasks_per_s']:.1f}x"
            print(f"{name:<48} {r['tasks_per_s']:>12,.0f} {'':>9} {'':>9} {ratio:>13}")
        elif "p50_us" in r:
            ratio = "" if name.startswith("BM_") else f"{r['p50_us'] / rtt:.1f}x"
            print(f"{name:<48} {'':>12} {r['p50_us']:>7.0f}us {r['p99_us']:>7.0f}us "
                  f"{ratio:>13}")


def main(args):
    mode = latency
    if args and args[0] == "--pool":
        mode, args = pool, args[1:]
    mode([r for path in args for r in records(path)])


if __name__ == "__main__":
    main(sys.argv[1:])
