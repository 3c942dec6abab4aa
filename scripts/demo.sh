#!/usr/bin/env bash
# The main job: record the bundled digits training run, then analyse it into a report.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
set -euo pipefail
mkdir -p runs
trajstore record --overwrite -o runs/digits.zarr examples/train_digits.py
trajstore analyze runs/digits.zarr -o runs/digits-report --with-toy
