"""Quantiles and raw-sample files for the Python peers of scripts/bench.sh.

Same contract as bench_samples.h: when BENCH_SAMPLES_DIR is set, a peer
writes each sample (microseconds, one a line) after a "# <name>" header to
<dir>/<slug>.txt, and the report pairs files with rows by that header.
"""
import os
import re


def quantile(sample, q):
    """Nearest-rank q-quantile (0..1); 0 for an empty sample."""
    if not sample:
        return 0.0
    sample = sorted(sample)
    rank = max(1, min(len(sample), int(-(-q * len(sample) // 1))))
    return sample[rank - 1]


def dump(name, micros):
    directory = os.environ.get("BENCH_SAMPLES_DIR")
    if not directory:
        return
    slug = re.sub(r"[^a-z0-9]", "_", name.lower())
    with open(os.path.join(directory, slug + ".txt"), "w") as f:
        f.write(f"# {name}\n")
        f.writelines(f"{us:.3f}\n" for us in micros)
