#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it
# needs, then runs every test in a plain build and under ASan+UBSan, the
# client library's tests under ThreadSanitizer (clang), builds and runs the
# downstream-consumer workspace, and fuzzes the request decoder for a
# minute. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Each stage's wall time, printed as it ends: CI has a budget.
stage_started=$SECONDS
stage() {
  if [[ -n "${stage_name:-}" ]]; then
    echo "   ($stage_name: $((SECONDS - stage_started)) s)"
  fi
  stage_name=$1
  stage_started=$SECONDS
  echo "== $1"
}

stage "layering: packages depend one way (bazel query)"
scripts/check_layering.py --self-test
scripts/check_layering.py
stage "bazel test //... (plain)"
bazel test //...
stage "bazel test --config=asan //... (ASan + UBSan)"
bazel test --config=asan //...
stage "ThreadSanitizer (clang): client library tests"
scripts/tsan.sh
stage "examples/consumer: forkserver as @forkserver from another workspace"
(cd examples/consumer && bazel test //... && bazel shutdown)
stage "libFuzzer: request decoding, 60 s"
scripts/fuzz.sh 60
bazel shutdown
stage "all tests passed in $SECONDS s"
