#!/usr/bin/env python3
"""Behaviour of scripts/bench_analysis.py on fixed results (no timing):
same-run baselines and the least-squares slope.

  /usr/bin/python3 tests/bench/bench_analysis_test.py
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import bench_analysis as analysis  # noqa: E402


def results(**groups):
    return {"groups": groups}


class BenchAnalysisTest(unittest.TestCase):
    def test_start_latency_ratio_is_against_raw_fork_of_the_same_run(self):
        rs = analysis.start_latency(results(start_latency=[
            {"name": "BM_StartJoin/fork", "p50_us": 300.0},
            {"name": "BM_RawForkWaitpid", "p50_us": 200.0}]))
        self.assertEqual([r["vs_raw_fork"] for r in rs], [1.5, 1.0])

    def test_no_baseline_means_no_ratio(self):
        rs = analysis.start_latency(results(start_latency=[
            {"name": "BM_StartJoin/fork", "p50_us": 300.0}]))
        self.assertIsNone(rs[0]["vs_raw_fork"])

    def test_pool_ratios_pair_modes_with_multiprocessing(self):
        rs = analysis.pool(results(pool=[
            {"name": "BM_MapChunksize1", "tasks_per_s": 600.0},
            {"name": "BM_MapDefaultChunks", "tasks_per_s": 50.0},
            {"name": "BM_ApplyRoundTrip", "p50_us": 20.0},
            {"name": "python multiprocessing map chunksize=1", "tasks_per_s": 100.0},
            {"name": "python multiprocessing map default chunks", "tasks_per_s": 100.0},
            {"name": "python multiprocessing apply_async round trip", "p50_us": 80.0},
            {"name": "billiard 4.1.0 map chunksize=1", "tasks_per_s": 10.0}]))
        by_name = {r["name"]: r for r in rs}
        self.assertEqual(by_name["BM_MapChunksize1"]["vs_multiprocessing"], 6.0)
        self.assertEqual(by_name["BM_MapDefaultChunks"]["vs_multiprocessing"], 0.5)
        self.assertEqual(by_name["BM_ApplyRoundTrip"]["vs_multiprocessing"], 0.25)
        self.assertEqual(by_name["billiard 4.1.0 map chunksize=1"]["library"],
                         "billiard")
        self.assertEqual(
            by_name["billiard 4.1.0 map chunksize=1"]["vs_multiprocessing"], 0.1)

    def test_fork_cost_slope_per_case_and_reasons_kept(self):
        fc = analysis.fork_cost(results(fork_cost=[
            {"name": "fork cost environment", "thp_enabled": "never"},
            {"name": "a", "case": "plain", "mib": 0, "p50_us": 100.0},
            {"name": "b", "case": "plain", "mib": 256, "p50_us": 612.0},
            {"name": "c", "case": "plain", "mib": 1024, "p50_us": 2148.0},
            {"name": "d", "case": "thp", "mib": 256, "error": "THP is never"}]))
        self.assertEqual(fc["environment"]["thp_enabled"], "never")
        self.assertAlmostEqual(fc["cases"]["plain"]["slope_us_per_mib"], 2.0)
        self.assertIsNone(fc["cases"]["thp"]["slope_us_per_mib"])
        self.assertEqual(fc["cases"]["thp"]["errors"], ["THP is never"])

    def test_forkserverd_baseline_is_posix_spawn_from_a_small_client(self):
        rs = analysis.forkserverd(results(forkserverd=[
            {"name": "x", "via": "forkserverd", "client_mib": 1024, "p50_us": 1100.0},
            {"name": "y", "via": "local posix_spawn", "client_mib": 1024, "p50_us": 900.0},
            {"name": "z", "via": "local posix_spawn", "client_mib": 0, "p50_us": 1000.0}]))
        self.assertEqual([r["vs_posix_spawn"] for r in rs], [1.1, 0.9, 1.0])


if __name__ == "__main__":
    unittest.main()
