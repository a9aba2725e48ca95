#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it
# needs, then runs every test in a plain build and under ASan+UBSan, builds
# and runs the downstream-consumer workspace, and fuzzes the request
# decoder for a minute. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== bazel test //... (plain)"
bazel test //...
echo "== bazel test --config=asan //... (ASan + UBSan)"
bazel test --config=asan //...
echo "== examples/consumer: forkserver as @forkserver from another workspace"
(cd examples/consumer && bazel test //... && bazel shutdown)
echo "== libFuzzer: request decoding, 60 s"
scripts/fuzz.sh 60
bazel shutdown
echo "== all tests passed"
