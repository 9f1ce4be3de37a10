#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite: lint, format, types, tests, a benchmark smoke run.
# Usage: scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
echo "== benchmark (smoke run; full figures: python -m llmsock_widget.bench)"
.venv/bin/python -m llmsock_widget.bench --deltas 2000 --repeat 1
