"""Figures derived from results.json (bench_collect.py): same-run ratios
and the fork-cost slope. Shared by bench_report.py and bench_plots.py so
the table and the plots never disagree.

Baselines, always from the same run:
  start latency  raw fork()+waitpid of the benchmark binary (BM_RawForkWaitpid)
  pool           multiprocessing.Pool, same workload
  round trip     multiprocessing's apply_async, and the C ping-pong floor
  forkserverd    local posix_spawn from a small client
"""
import os

RAW_FORK = "BM_RawForkWaitpid"


def rows(results, group):
    return results["groups"].get(group, [])


def find(rows_, predicate):
    return next((r for r in rows_ if predicate(r)), None)


def ratio(value, baseline):
    if value is None or not baseline:
        return None
    return value / baseline


def start_latency(results):
    """Rows with "vs_raw_fork" (p50 / raw fork p50)."""
    rs = rows(results, "start_latency")
    base = find(rs, lambda r: r["name"] == RAW_FORK)
    base_p50 = base.get("p50_us") if base else None
    return [dict(r, vs_raw_fork=ratio(r.get("p50_us"), base_p50)) for r in rs]


def pool_mode(name):
    """'chunksize=1', 'default chunks' or 'round trip' for a pool row."""
    lowered = name.lower()
    if "chunksize1" in lowered or "chunksize=1" in lowered:
        return "chunksize=1"
    if "default" in lowered:
        return "default chunks"
    if "round" in lowered:
        return "round trip"
    return None


def pool_library(row):
    if row["name"].startswith("BM_"):
        return "ours"
    if row["name"].startswith("billiard"):
        return "billiard"
    if "multiprocessing" in row["name"]:
        return "multiprocessing"
    return row["name"]


def pool(results):
    """Pool rows with "library", "mode" and "vs_multiprocessing": for
    throughput, this rate / multiprocessing's (higher is better); for the
    round trip, this p50 / multiprocessing's (lower is better)."""
    rs = [dict(r, library=pool_library(r), mode=pool_mode(r["name"]))
          for r in rows(results, "pool")]
    for r in rs:
        mp = find(rs, lambda o: o["library"] == "multiprocessing"
                  and o["mode"] == r["mode"])
        key = "p50_us" if r["mode"] == "round trip" else "tasks_per_s"
        r["vs_multiprocessing"] = ratio(r.get(key), mp.get(key) if mp else None)
    return rs


def floor(results):
    """Floor rows with "vs_socketpair" (p50 over the socketpair floor's)."""
    rs = rows(results, "floor")
    base = find(rs, lambda r: "socketpair" in r["name"])
    return [dict(r, vs_socketpair=ratio(r.get("p50_us"),
                                        base.get("p50_us") if base else None))
            for r in rs]


def least_squares_slope(points):
    """Slope of the least-squares line through (x, y) points; None for
    fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx


def fork_cost(results):
    """{"environment": row or {}, "cases": {case: {"points": [(mib, p50)],
    "rows": [...], "errors": [...], "slope_us_per_mib": float|None}}}."""
    rs = rows(results, "fork_cost")
    env = find(rs, lambda r: r["name"] == "fork cost environment") or {}
    cases = {}
    for r in rs:
        if "case" not in r:
            continue
        case = cases.setdefault(r["case"], {"points": [], "rows": [],
                                            "errors": []})
        if "error" in r:
            case["errors"].append(r["error"])
        else:
            case["rows"].append(r)
            case["points"].append((r["mib"], r["p50_us"]))
    for case in cases.values():
        case["slope_us_per_mib"] = least_squares_slope(case["points"])
    return {"environment": env, "cases": cases}


def forkserverd(results):
    """Rows with "vs_posix_spawn": p50 over local posix_spawn's from a
    small client."""
    rs = rows(results, "forkserverd")
    base = find(rs, lambda r: r.get("via") == "local posix_spawn"
                and r.get("client_mib") == 0)
    return [dict(r, vs_posix_spawn=ratio(r.get("p50_us"),
                                         base.get("p50_us") if base else None))
            for r in rs]


def load_samples(results_dir, row):
    """The row's raw samples (floats), or None."""
    if not row.get("samples"):
        return None
    with open(os.path.join(results_dir, row["samples"])) as f:
        return [float(line) for line in f if line.strip() and line[0] != "#"]
