#!/usr/bin/python3
"""Our Celery worker vs `celery worker --pool=prefork`, same machine, same broker.

  tests/bench/celery_bench.py OUT.json [--worker PATH] [--concurrency 2] [--runs 3]

Build the worker first: bazel build -c opt //tools/celery:celery_worker.
For each configuration (Celery's defaults: early ack, prefetch 4; and
acks_late with prefetch 1) and each worker, RUNS times:

  drain   a queue pre-filled with N forkserver.noop messages (made once by
          the real Celery client, copied into place atomically with Redis
          COPY while the worker idles): tasks/s from the copy until every
          result is stored. A run stops at --max-seconds; the rate is then
          what finished by that time.
  p50     end-to-end latency of one task: send_task + AsyncResult.get(),
          one at a time, idle worker.

Prints medians as a table and writes them, with every run, to OUT.json.
Every process it starts runs under `timeout`, and is killed at the end.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import redis

PY = "/usr/bin/python3"
APP = '''
import os
from celery import Celery
url = os.environ["BENCH_BROKER"]
app = Celery("bench_app", broker=url, backend=os.environ["BENCH_BACKEND"])
app.conf.task_acks_late = os.environ.get("BENCH_ACKS_LATE") == "1"
app.conf.worker_prefetch_multiplier = int(os.environ.get("BENCH_PREFETCH", "4"))
app.conf.broker_connection_retry_on_startup = True

@app.task(name="forkserver.noop")
def noop():
    return None
'''

CONFIGS = [
    {"name": "defaults (early ack, prefetch 4)", "acks_late": False, "prefetch": 4},
    {"name": "acks_late, prefetch 1", "acks_late": True, "prefetch": 1},
]


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="celbench-", dir="/tmp")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.broker = "redis+socket://" + self.sock
        self.backend = "redis+socket://" + self.sock + "?virtual_host=1"
        self.procs = []
        with open(os.path.join(self.dir, "bench_app.py"), "w") as f:
            f.write(APP)
        self.env = dict(os.environ, BENCH_BROKER=self.broker, BENCH_BACKEND=self.backend,
                        PYTHONPATH=self.dir)

    def start(self, argv, log, env=None, limit=900):
        p = subprocess.Popen(["timeout", "-s", "KILL", str(limit)] + argv,
                             stdout=open(os.path.join(self.dir, log), "w"),
                             stderr=subprocess.STDOUT, env=env or self.env,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p):
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def redis_up(self):
        self.start(["redis-server", "--port", "0", "--unixsocket", self.sock, "--save", "",
                    "--appendonly", "no", "--dir", self.dir], "redis.log")
        self.r0 = redis.Redis(unix_socket_path=self.sock, db=0)
        self.r1 = redis.Redis(unix_socket_path=self.sock, db=1)
        deadline = time.time() + 10
        while True:
            try:
                self.r0.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def prefill(self, n):
        """N real Celery messages in the list 'template' (made once)."""
        code = ("import bench_app\n"
                "for _ in range(%d): bench_app.app.send_task('forkserver.noop')\n" % n)
        subprocess.run(["timeout", "600", PY, "-c", code], env=self.env, check=True,
                       cwd=self.dir)
        self.r0.rename("celery", "template")

    def worker(self, kind, cfg):
        c = str(self.args.concurrency)
        if kind == "forkserver":
            argv = [self.args.worker, "--broker=" + self.broker,
                    "--result-backend=" + self.backend, "--concurrency=" + c,
                    "--prefetch-multiplier=%d" % cfg["prefetch"], "--loglevel=warning"]
            if cfg["acks_late"]:
                argv.append("--acks-late")
            return self.start(argv, "ours.log")
        env = dict(self.env, BENCH_ACKS_LATE="1" if cfg["acks_late"] else "0",
                   BENCH_PREFETCH=str(cfg["prefetch"]))
        return self.start([PY, "-m", "celery", "-A", "bench_app", "worker",
                           "--pool=prefork", "-c", c, "--loglevel=warning",
                           "--without-gossip", "--without-mingle", "--without-heartbeat"],
                          "celery.log", env=env)

    def wait_ready(self):
        """One task through: the worker consumes and stores."""
        code = ("import bench_app\n"
                "bench_app.app.send_task('forkserver.noop').get(timeout=60)\n")
        subprocess.run(["timeout", "90", PY, "-c", code], env=self.env, check=True,
                       cwd=self.dir)

    def drain(self, n):
        self.r1.flushdb()
        self.r0.delete("celery")
        start = time.perf_counter()
        self.r0.copy("template", "celery")
        done = 0
        while time.perf_counter() - start < self.args.max_seconds:
            done = self.r1.dbsize()
            if done >= n:
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        return {"tasks": done, "seconds": elapsed, "tasks_per_s": done / elapsed}

    def latency(self, count):
        code = ("import bench_app, time, json\n"
                "xs = []\n"
                "for _ in range(%d):\n"
                "    t = time.perf_counter()\n"
                "    bench_app.app.send_task('forkserver.noop').get(timeout=30)\n"
                "    xs.append(time.perf_counter() - t)\n"
                "xs.sort(); print(json.dumps(xs[len(xs) // 2]))\n" % count)
        out = subprocess.run(["timeout", "300", PY, "-c", code], env=self.env, check=True,
                             cwd=self.dir, stdout=subprocess.PIPE, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def run(self):
        self.redis_up()
        self.prefill(self.args.n)
        results = []
        for cfg in CONFIGS:
            for kind in ("forkserver", "celery-prefork"):
                runs = []
                for run in range(self.args.runs):
                    print("%s / %s / run %d" % (cfg["name"], kind, run + 1), file=sys.stderr)
                    self.r0.delete("unacked", "unacked_index", "celery")
                    p = self.worker(kind, cfg)
                    self.wait_ready()
                    d = self.drain(self.args.n)
                    # What a capped drain left would queue ahead of the probes.
                    self.r0.delete("celery")
                    d["p50_s"] = self.latency(self.args.latency_count)
                    self.stop(p)
                    runs.append(d)
                results.append({
                    "config": cfg["name"], "worker": kind,
                    "concurrency": self.args.concurrency,
                    "median_tasks_per_s": statistics.median(r["tasks_per_s"] for r in runs),
                    "median_p50_ms": 1000 * statistics.median(r["p50_s"] for r in runs),
                    "runs": runs})
        return results

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                self.stop(p)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--worker", default="bazel-bin/tools/celery/celery_worker")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--max-seconds", type=float, default=20)
    ap.add_argument("--latency-count", type=int, default=100)
    args = ap.parse_args()
    if not os.access(args.worker, os.X_OK):
        sys.exit("no worker at %s (bazel build -c opt //tools/celery:celery_worker)" % args.worker)
    b = Bench(args)
    try:
        results = b.run()
    except Exception:
        for log in ("ours.log", "celery.log"):
            path = os.path.join(b.dir, log)
            if os.path.exists(path):
                sys.stderr.write("--- %s (tail)\n%s\n" % (log, open(path).read()[-3000:]))
        raise
    finally:
        b.cleanup()
    print("%-34s %-16s %12s %10s" % ("configuration", "worker", "tasks/s", "p50 ms"))
    for r in results:
        print("%-34s %-16s %12.0f %10.2f" % (r["config"], r["worker"],
                                             r["median_tasks_per_s"], r["median_p50_ms"]))
    for cfg in CONFIGS:
        ours = [r for r in results if r["config"] == cfg["name"] and r["worker"] == "forkserver"][0]
        theirs = [r for r in results if r["config"] == cfg["name"] and r["worker"] != "forkserver"][0]
        ratio = ours["median_tasks_per_s"] / max(theirs["median_tasks_per_s"], 1e-9)
        print("%s: %.1fx Celery prefork's throughput" % (cfg["name"], ratio))
    with open(args.out, "w") as f:
        json.dump({"n": args.n, "runs": args.runs, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
