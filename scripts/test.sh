#!/usr/bin/env bash
# Set up everything (a .venv, the JS toolchain, Chromium if missing) and run the whole test suite:
# lint, format, types, JS unit tests and bundle check, Python unit/integration/kernel/browser tests,
# the notebooks under nbval, and a benchmark smoke run.
# Usage: scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

echo "== js: install, unit tests, bundle"
(cd js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build)
if ! git diff --quiet -- llmsock_widget/static; then
  echo "llmsock_widget/static is stale: run 'cd js && npm run build' and commit the bundle" >&2
  git --no-pager diff --stat -- llmsock_widget/static >&2
  exit 1
fi

echo "== labextension: build, check the committed build"
scripts/build-labextension.sh
if [ -n "$(git status --porcelain -- llmsock_widget/labextension)" ]; then
  echo "llmsock_widget/labextension is stale: run scripts/build-labextension.sh and commit it" >&2
  git status --short -- llmsock_widget/labextension >&2
  exit 1
fi

# After the builds: the editable install copies the lab extension into the venv.
source scripts/venv.sh dev

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest (unit, integration, kernel, browser)"
.venv/bin/pytest "$@"
echo "== notebooks (nbval)"
# Run them as a fresh checkout would: no chats kept next to them by an earlier run.
rm -rf notebooks/.llmsock
.venv/bin/pytest --nbval-lax notebooks -p no:cacheprovider
echo "== benchmark (smoke run; full figures: python -m benchmarks)"
.venv/bin/python -m benchmarks --deltas 2000 --repeat 1
