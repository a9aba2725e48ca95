#!/usr/bin/env python3
"""Writes RESULTS_DIR/report.md from results.json (bench_collect.py) and
the PNGs bench_plots.py drew there, and prints it without the image lines.

Usage: bench_report.py RESULTS_DIR

Every ratio is against a baseline measured in the same run (see
bench_analysis.py); latencies are p50 (median) and p99.
"""
import json
import os
import sys

import bench_analysis as analysis


def us(value):
    if value is None:
        return "-"
    if value >= 10000:
        return f"{value / 1000:,.1f} ms"
    if value >= 10:
        return f"{value:,.0f} us"
    return f"{value:.2f} us"


def times(value):
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3g}x"


def table(header, body):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return lines


def image(results_dir, name, alt):
    return [f"![{alt}]({name})", ""] if os.path.exists(
        os.path.join(results_dir, name)) else []


def start_latency_section(results, results_dir):
    body = []
    for r in analysis.start_latency(results):
        if "error" in r:
            body.append([r["name"], r["error"], "", "", ""])
            continue
        body.append([r["name"], us(r.get("p50_us")), us(r.get("p99_us")),
                     times(r.get("vs_raw_fork")), r.get("iterations", "")])
    return (["## Start + join of a no-op worker", "",
             "Against raw `fork()+_exit+waitpid` of the benchmark binary, "
             "same run.", ""]
            + image(results_dir, "start_latency.png", "start latency")
            + table(["case", "p50", "p99", "p50 vs raw fork", "n"], body) + [""])


def pool_section(results, results_dir):
    rs = analysis.pool(results)
    throughput = [[r["name"], f"{r['tasks_per_s']:,.0f}",
                   times(r["vs_multiprocessing"])]
                  for r in rs if "tasks_per_s" in r]
    errors = [[r["name"], r["error"], ""] for r in rs if "error" in r]
    round_trip = [[r["name"], us(r["p50_us"]), us(r["p99_us"]),
                   times(r["vs_multiprocessing"]), ""]
                  for r in rs if r["mode"] == "round trip" and "p50_us" in r]
    floors = analysis.floor(results)
    ours = analysis.find(rs, lambda r: r["library"] == "ours"
                         and r["mode"] == "round trip")
    for f in floors:
        if "p50_us" in f:
            round_trip.append([f["name"] + " (C, no pool)", us(f["p50_us"]),
                               us(f["p99_us"]), "",
                               times(analysis.ratio(ours and ours.get("p50_us"),
                                                    f["p50_us"]))])
    return (["## Pool: no-op tasks, 2 processes", "",
             "Throughput against `multiprocessing.Pool` on the same workload, "
             "same run (higher is better).", ""]
            + image(results_dir, "pool_throughput.png", "pool throughput")
            + table(["case", "tasks/s", "vs multiprocessing"], throughput + errors)
            + ["", "`apply_async(...).get()` one at a time, beside a bare "
               "process ping-pong (the floor) in the same run. "
               "'vs multiprocessing': p50 over multiprocessing's (lower is "
               "better); 'ours over floor': our pool's p50 over that "
               "floor's. The spin-then-block floor only beats futex block "
               "when each side has a core to itself: on a busy machine each "
               "side spends its spin budget while the other waits for a "
               "CPU, so read it beside the load average above.", ""]
            + image(results_dir, "round_trip.png", "round trip")
            + table(["case", "p50", "p99", "vs multiprocessing",
                     "ours over floor"], round_trip) + [""])


def fork_cost_section(results, results_dir):
    fc = analysis.fork_cost(results)
    env = fc["environment"]
    lines = ["## Fork cost against touched memory", "",
             "`fork()+_exit+waitpid` p50 with 0, 256 and 1024 MiB touched in a "
             "`lib/memory` HugePageArena; slope by least squares.", "",
             f"THP (`/sys/kernel/mm/transparent_hugepage/enabled`): "
             f"`{env.get('thp_enabled', '?')}`; hugetlb pages reserved "
             f"(`/proc/sys/vm/nr_hugepages`): {env.get('nr_hugepages', '?')}.",
             ""]
    lines += image(results_dir, "fork_cost.png", "fork cost")
    body = []
    plain = fc["cases"].get("plain", {}).get("slope_us_per_mib")
    for name, case in fc["cases"].items():
        if not case["rows"]:
            continue  # only a reason, listed below the table
        by_mib = {r["mib"]: r for r in case["rows"]}
        cells = [us(by_mib[m]["p50_us"]) if m in by_mib else "-"
                 for m in (0, 256, 1024)]
        got = ", ".join(f"{r['anon_huge_mib']:.0f}/{r['mib']}"
                        for r in case["rows"] if r["mib"])
        slope = case["slope_us_per_mib"]
        body.append([name] + cells +
                     ["-" if slope is None else f"{slope:.2f}",
                      times(analysis.ratio(slope, plain)) if name != "plain" else "",
                      got or "-"])
    lines += table(["case", "0 MiB", "256 MiB", "1024 MiB", "us per MiB",
                    "slope vs plain", "AnonHugePages MiB got"], body)
    notes = [f"- {name}: {e}" for name, case in fc["cases"].items()
             for e in case["errors"]]
    return lines + [""] + notes + ([""] if notes else [])


def forkserverd_section(results, results_dir):
    body = []
    for r in analysis.forkserverd(results):
        if "error" in r:
            body.append([r["name"], r["error"], "", ""])
        else:
            body.append([r["name"], us(r["p50_us"]), us(r["p99_us"]),
                         times(r["vs_posix_spawn"])])
    if not body:
        return []
    return (["## Launching a program: forkserverd against posix_spawn", "",
             "`forkserverctl bench -- /bin/true`, against local `posix_spawn` "
             "from a small client, same run.", ""]
            + image(results_dir, "forkserverd.png", "forkserverd")
            + table(["case", "p50", "p99", "p50 vs posix_spawn (small client)"],
                    body) + [""])


def cell(value):
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def extra_sections(results):
    lines = []
    for section in results.get("sections", []):
        columns = list(dict.fromkeys(k for r in section["rows"] for k in r))
        lines += [f"## {section['title']}", ""]
        if section.get("note"):
            lines += [section["note"], ""]
        if columns:
            lines += table(columns, [[cell(r.get(c, "")) for c in columns]
                                     for r in section["rows"]]) + [""]
    return lines


def steps_section(results):
    body = [[s["name"], s.get("title", ""), f"{s.get('seconds', 0):.0f} s",
             s.get("status", "")] for s in results.get("steps", [])]
    return (["## Steps", ""] + table(["step", "what", "took", "status"], body)
            + [""]) if body else []


def main(results_dir):
    with open(os.path.join(results_dir, "results.json")) as f:
        results = json.load(f)
    meta = results.get("meta", {})
    ctx = meta.get("benchmark_context", {})
    lines = ["# forkserver benchmark report", "",
             f"{meta.get('date', '')} on {meta.get('host', '?')}: "
             f"{ctx.get('num_cpus', '?')} CPUs, load average before the run "
             f"{meta.get('load_before', '?')}, {meta.get('seconds', '?')} s per "
             "case. Ratios are within this run only.", ""]
    lines += start_latency_section(results, results_dir)
    lines += pool_section(results, results_dir)
    lines += fork_cost_section(results, results_dir)
    lines += forkserverd_section(results, results_dir)
    lines += extra_sections(results)
    lines += steps_section(results)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(results_dir, "report.md"), "w") as f:
        f.write(text)
    print("\n".join(l for l in lines if not l.startswith("![")))


if __name__ == "__main__":
    main(sys.argv[1])
