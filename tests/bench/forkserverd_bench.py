#!/usr/bin/env python3
"""Launch latency through forkserverd against local fork+exec and
posix_spawn, from a small client and from one holding 1 GiB: runs
`forkserverctl bench` (tools/forkserverctl.cc) against a private daemon and
turns its table into JSON lines {"name", "client_mib", "via", "p50_us",
"p99_us", "iterations"}.

Usage: forkserverd_bench.py BIN_DIR [runs per variant, default 200]
  BIN_DIR holds forkserverd and forkserverctl (bazel-bin/tools).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLIENTS_MIB = (0, 1024)
ROWS = {  # forkserverctl's row label -> ours
    "through forkserverd": "forkserverd",
    "status round trip": "forkserverd status round trip",
    "local fork + exec": "local fork+exec",
    "local posix_spawn": "local posix_spawn",
}
UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse_latency(text):
    number, unit = text.split()
    return float(number) * UNITS_US[unit]


def parse_table(output, client_mib, runs):
    rows = []
    pattern = re.compile(r"^(.*?)\s{2,}(\S+ (?:us|ms|s))\s+(\S+ (?:us|ms|s))\s*$")
    for line in output.splitlines():
        match = pattern.match(line)
        if not match or match.group(1).strip() not in ROWS:
            continue
        via = ROWS[match.group(1).strip()]
        size = f"{client_mib} MiB client" if client_mib else "small client"
        rows.append({"name": f"{via} from {size}", "client_mib": client_mib,
                     "via": via, "p50_us": parse_latency(match.group(2)),
                     "p99_us": parse_latency(match.group(3)),
                     "iterations": runs})
    return rows


def wait_for_socket(path, daemon, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if daemon.poll() is not None:
            raise RuntimeError(f"forkserverd exited with {daemon.returncode}")
        time.sleep(0.02)
    raise RuntimeError("forkserverd did not create its socket")


def main(args):
    bin_dir = args[0]
    runs = int(args[1]) if len(args) > 1 else 200
    # mkdtemp under /tmp: 0700 as forkserverd requires, and short enough
    # for sun_path.
    directory = tempfile.mkdtemp(prefix="fsd-bench-", dir="/tmp")
    socket = os.path.join(directory, "socket")
    daemon = subprocess.Popen([os.path.join(bin_dir, "forkserverd"),
                               f"--socket={socket}"],
                              stdout=sys.stderr)  # keep stdout JSON only
    try:
        wait_for_socket(socket, daemon)
        for client_mib in CLIENTS_MIB:
            done = subprocess.run(
                [os.path.join(bin_dir, "forkserverctl"), f"--socket={socket}",
                 "bench", f"--n={runs}", f"--client_mib={client_mib}", "--",
                 "/bin/true"],
                capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                print(json.dumps({"name": f"forkserverctl bench, {client_mib} MiB",
                                  "error": done.stderr.strip()[-300:]}), flush=True)
                continue
            for row in parse_table(done.stdout, client_mib, runs):
                print(json.dumps(row), flush=True)
    finally:
        daemon.send_signal(signal.SIGTERM)  # it cleans up its socket
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
