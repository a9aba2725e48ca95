#!/usr/bin/env python3
"""forkserverd_bench.py turns forkserverctl's table into rows.

  /usr/bin/python3 tests/bench/forkserverd_bench_test.py
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import forkserverd_bench  # noqa: E402

TABLE = """run + wait (n=200)                  p50        p99
through forkserverd             1.31 ms    2.40 ms
status round trip                 95 us     180 us
local fork + exec              57.95 ms     1.02 s
local posix_spawn                550 us     900 us
"""


class ParseTableTest(unittest.TestCase):
    def test_rows_in_microseconds(self):
        rows = forkserverd_bench.parse_table(TABLE, 1024, 200)
        self.assertEqual([r["via"] for r in rows],
                         ["forkserverd", "forkserverd status round trip",
                          "local fork+exec", "local posix_spawn"])
        self.assertEqual([r["p50_us"] for r in rows],
                         [1310.0, 95.0, 57950.0, 550.0])
        self.assertEqual(rows[2]["p99_us"], 1.02e6)
        self.assertEqual(rows[0]["name"], "forkserverd from 1024 MiB client")
        self.assertTrue(all(r["client_mib"] == 1024 for r in rows))

    def test_small_client_naming(self):
        rows = forkserverd_bench.parse_table(TABLE, 0, 200)
        self.assertEqual(rows[3]["name"], "local posix_spawn from small client")


if __name__ == "__main__":
    unittest.main()
