#!/usr/bin/env python3
"""Gathers one scripts/bench.sh run into RESULTS_DIR/results.json.

Usage: bench_collect.py RESULTS_DIR

Reads what bench.sh left in RESULTS_DIR:
  raw/<peer>.json         Google Benchmark JSON, or JSON lines from a peer;
  raw/steps.jsonl         one {"step", "title", "seconds", "status"} a step;
  raw/meta.json           run facts (date, host, argument);
  sections/*.json         extra peers' {"title": ..., "rows": [...]};
  samples/*.txt           raw samples, "# <name>" then one value a line.
and writes results.json: {"meta", "steps", "groups": {group: [row]},
"sections": [...]}, where a row is a dict with at least "name" (and
"samples" naming its sample file when there is one). No figures are
computed here: bench_analysis.py does that.
"""
import glob
import json
import os
import sys

# raw file stem -> group in results.json
GROUPS = {
    "start_latency": "start_latency",
    "python_start_latency": "start_latency",
    "pool": "pool",
    "python_pool_multiprocessing": "pool",
    "python_pool_billiard": "pool",
    "ping_pong_floor": "floor",
    "fork_cost": "fork_cost",
    "forkserverd": "forkserverd",
}


def read_rows(path):
    """Rows of a Google Benchmark JSON file or of a JSON-lines file. A line
    cut short by a timeout is skipped, not fatal."""
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "benchmarks" in data:
        rows = []
        for b in data["benchmarks"]:
            row = {k: v for k, v in b.items()
                   if isinstance(v, (int, float, str)) and k not in
                   ("run_name", "run_type", "repetitions", "repetition_index",
                    "threads", "family_index", "per_family_instance_index",
                    "time_unit")}
            row["name"] = b["name"].split("/min_time")[0].split("/real_time")[0]
            if b.get("error_occurred"):
                row["error"] = b.get("error_message", "error")
            rows.append(row)
        return rows, data.get("context", {})
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "name" in row:
            rows.append(row)
    return rows, {}


def sample_files(results_dir):
    """Sample name -> path relative to results_dir."""
    names = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "samples", "*.txt"))):
        with open(path) as f:
            header = f.readline()
        if header.startswith("# "):
            names[header[2:].strip()] = os.path.relpath(path, results_dir)
    return names


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return default


def main(results_dir):
    raw = os.path.join(results_dir, "raw")
    samples = sample_files(results_dir)
    groups = {group: [] for group in dict.fromkeys(GROUPS.values())}
    meta = read_json(os.path.join(raw, "meta.json"), {})
    for stem, group in GROUPS.items():
        for ext in (".json", ".jsonl"):
            path = os.path.join(raw, stem + ext)
            if not os.path.exists(path):
                continue
            rows, context = read_rows(path)
            if context:
                meta.setdefault("benchmark_context", context)
            for row in rows:
                if row["name"] in samples:
                    row["samples"] = samples[row["name"]]
                row["source"] = stem
                groups[group].append(row)
    steps = []
    steps_path = os.path.join(raw, "steps.jsonl")
    if os.path.exists(steps_path):
        steps, _ = read_rows(steps_path)
    sections = []
    for path in sorted(glob.glob(os.path.join(results_dir, "sections", "*.json"))):
        section = read_json(path, None)
        if isinstance(section, dict) and "title" in section and \
                isinstance(section.get("rows"), list):
            sections.append(section)
        else:
            sections.append({"title": os.path.basename(path),
                             "rows": [], "note": "not a {title, rows} JSON"})
    results = {"meta": meta, "steps": steps, "groups": groups,
               "sections": sections}
    with open(os.path.join(results_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
