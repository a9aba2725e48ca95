#!/usr/bin/env bash
# The main job: installs what it needs, builds optimised, and runs the demo
# (an application with a one-second initialisation starting 50 workers with
# each start method). Extra arguments go to the demo (e.g. --workers=20).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "Building the demo (optimised; the first build takes a few minutes)..."
# Errors and warnings only: no progress or INFO lines.
bazel build -c opt --noshow_progress --ui_event_filters=-info //tools:demo
echo
exec bazel-bin/tools/demo "$@"
