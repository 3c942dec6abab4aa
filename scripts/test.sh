#!/usr/bin/env bash
# The test command: lint, then every test (slow end-to-end ones included).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
set -euo pipefail
ruff check .
# Tests run on every core (at most 4 processes: pytest-xdist); pass -n 0 to run them in one.
python -m pytest -q -n auto --maxprocesses=4 "$@"
