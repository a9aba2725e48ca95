#!/usr/bin/env python3
"""Draws the report's PNGs into RESULTS_DIR from results.json and the raw
samples (matplotlib, Debian's python3-matplotlib; no display needed).

Usage: bench_plots.py RESULTS_DIR

  start_latency.png    start+join per start method and peer: box plot
                       (whiskers p1..p99) and CDF, log time axis
  round_trip.png       pool apply round trip, ours and Python's, with the
                       C ping-pong floors: CDF
  pool_throughput.png  map tasks/s, chunksize=1 and default chunks, bars
  fork_cost.png        fork p50 against touched MiB per backing, fitted
                       slope in the legend
  forkserverd.png      launch p50 by route, small and 1 GiB client
A plot whose data is missing (a step failed or timed out) is skipped.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import bench_analysis as analysis  # noqa: E402

COLORS = {"ours": "tab:blue", "multiprocessing": "tab:orange",
          "billiard": "tab:green", "floor": "tab:gray"}


def cdf(ax, sample, label, **style):
    sample = sorted(sample)
    n = len(sample)
    ax.plot(sample, [(i + 1) / n for i in range(n)], label=label, **style)


def with_samples(results_dir, rows):
    out = []
    for r in rows:
        sample = analysis.load_samples(results_dir, r)
        if sample:
            out.append((r, sample))
    return out


def start_latency(results, results_dir):
    data = with_samples(results_dir, analysis.start_latency(results))
    if not data:
        return False
    fig, (box, line) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [r["name"] for r, _ in data]
    parts = box.boxplot([s for _, s in data], vert=False, whis=(1, 99),
                        showfliers=False, labels=labels, patch_artist=True)
    for patch, (r, _) in zip(parts["boxes"], data):
        patch.set_facecolor("tab:blue" if r["name"].startswith("BM_")
                            else "tab:orange")
        patch.set_alpha(0.6)
    for y, (r, _) in enumerate(data, start=1):
        ratio = r.get("vs_raw_fork")
        note = f"  p50 {r['p50_us']:,.0f} us" + (f" ({ratio:.2f}x)" if ratio else "")
        box.annotate(note, (r["p99_us"], y), va="center", fontsize=8)
    box.set_xscale("log")
    box.invert_yaxis()
    box.set_xlabel("start + join latency, us (log); box p25-p75, whiskers p1-p99")
    box.set_title("Start + join of a no-op worker (p50, and over raw fork p50)")
    for r, sample in data:
        cdf(line, sample, r["name"],
            linestyle="-" if r["name"].startswith("BM_") else "--")
    line.set_xscale("log")
    line.set_xlabel("latency, us (log)")
    line.set_ylabel("fraction of starts")
    line.set_title("CDF")
    line.grid(True, which="both", alpha=0.3)
    line.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(results_dir, "start_latency.png"), dpi=110)
    plt.close(fig)
    return True


def round_trip(results, results_dir):
    pool_rows = [r for r in analysis.pool(results) if r["mode"] == "round trip"]
    data = with_samples(results_dir, pool_rows + analysis.floor(results))
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(9, 5))
    floor_styles = iter([("black", ":"), ("tab:purple", "--"),
                         ("tab:brown", "-."), ("tab:gray", ":")] * 2)
    for r, sample in data:
        library = r.get("library", "floor")
        label = f"{r['name']} (p50 {r['p50_us']:,.1f} us, p99 {r['p99_us']:,.0f} us)"
        color, style = (next(floor_styles) if library == "floor"
                        else (COLORS.get(library), "-"))
        cdf(ax, sample, label, color=color, linestyle=style)
    ax.set_xscale("log")
    ax.set_xlabel("round trip, us (log)")
    ax.set_ylabel("fraction of round trips")
    ax.set_title("Pool apply round trip against the C ping-pong floor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(results_dir, "round_trip.png"), dpi=110)
    plt.close(fig)
    return True


def pool_throughput(results, results_dir):
    rs = [r for r in analysis.pool(results) if "tasks_per_s" in r]
    if not rs:
        return False
    modes = ["chunksize=1", "default chunks"]
    libraries = ["ours", "multiprocessing", "billiard"]
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.27
    for j, library in enumerate(libraries):
        for i, mode in enumerate(modes):
            r = analysis.find(rs, lambda o: o["library"] == library
                              and o["mode"] == mode)
            if not r:
                continue
            x = i + (j - 1) * width
            ax.bar(x, r["tasks_per_s"], width, color=COLORS[library],
                   label=library if i == 0 else None)
            ratio = r["vs_multiprocessing"]
            ax.annotate(f"{r['tasks_per_s']:,.0f}\n{ratio:.2f}x mp" if ratio
                        else f"{r['tasks_per_s']:,.0f}",
                        (x, r["tasks_per_s"]), ha="center", va="bottom",
                        fontsize=8)
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels([f"map {m}" for m in modes])
    ax.set_yscale("log")
    ax.set_ylabel("no-op tasks/s (log)")
    ax.set_title("Pool map throughput, 2 processes (ratio vs multiprocessing)")
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the labels and legend
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(results_dir, "pool_throughput.png"), dpi=110)
    plt.close(fig)
    return True


def fork_cost(results, results_dir):
    fc = analysis.fork_cost(results)
    cases = {k: v for k, v in fc["cases"].items() if v["points"]}
    if not cases:
        return False
    fig, ax = plt.subplots(figsize=(9, 5))
    for k, (name, case) in enumerate(cases.items()):
        xs = [x for x, _ in case["points"]]
        ys = [y / 1000 for _, y in case["points"]]
        slope = case["slope_us_per_mib"]
        label = name + (f": {slope:.2f} us/MiB" if slope is not None else "")
        ax.plot(xs, ys, marker="o", label=label)
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.2f} ms", (x, y), textcoords="offset points",
                        xytext=(4, 6 - 14 * k), fontsize=8)
    for name, case in fc["cases"].items():
        if not case["points"] and case["errors"]:
            ax.plot([], [], " ",
                    label=f"{name}: {case['errors'][0].split(' (')[0]}")
    env = fc["environment"]
    ax.set_xlabel("touched memory in the forking process, MiB")
    ax.set_ylabel("fork + _exit + waitpid p50, ms (log)")
    ax.set_yscale("log")
    ax.set_title(f"Fork cost against memory size (THP: {env.get('thp_enabled', '?')})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(results_dir, "fork_cost.png"), dpi=110)
    plt.close(fig)
    return True


def forkserverd(results, results_dir):
    rs = [r for r in analysis.forkserverd(results) if "p50_us" in r]
    if not rs:
        return False
    vias = list(dict.fromkeys(r["via"] for r in rs))
    clients = sorted({r["client_mib"] for r in rs})
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / len(clients)
    for j, mib in enumerate(clients):
        for i, via in enumerate(vias):
            r = analysis.find(rs, lambda o: o["via"] == via
                              and o["client_mib"] == mib)
            if not r:
                continue
            x = i + (j - (len(clients) - 1) / 2) * width
            ax.bar(x, r["p50_us"], width, color=f"C{j}",
                   label=(f"{mib} MiB client" if mib else "small client")
                   if i == 0 else None)
            ax.annotate(f"{r['p50_us']:,.0f} us\n{r['vs_posix_spawn']:.2f}x",
                        (x, r["p50_us"]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(vias)))
    ax.set_xticklabels(vias)
    ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.set_ylabel("run + wait of /bin/true, p50 us (log)")
    ax.set_title("Launching a program (ratio vs posix_spawn from a small client)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(results_dir, "forkserverd.png"), dpi=110)
    plt.close(fig)
    return True


def main(results_dir):
    with open(os.path.join(results_dir, "results.json")) as f:
        results = json.load(f)
    for plot in (start_latency, round_trip, pool_throughput, fork_cost,
                 forkserverd):
        if not plot(results, results_dir):
            print(f"bench_plots: no data for {plot.__name__}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
