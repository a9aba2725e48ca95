#!/usr/bin/env bash
# The main job: installs what it needs, builds optimised, and runs the demo
# (an application with a one-second initialisation starting 50 workers with
# each start method). Extra arguments go to the demo (e.g. --workers=20).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bazel build -c opt //tools:demo
exec bazel-bin/tools/demo "$@"
