#!/usr/bin/env bash
# The test command: lint, then every test (slow end-to-end ones included).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
set -euo pipefail
ruff check .
python -m pytest -q "$@"
