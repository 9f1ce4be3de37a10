#!/usr/bin/env bash
# Set up everything (a .venv, the JS toolchain, Chromium and redis-server if missing) and run the
# whole test suite:
# lint, format, types, JS unit tests and bundle check, Python unit/integration/kernel/browser tests,
# the notebooks under nbval, and a benchmark smoke run.
# Every stage runs even when an earlier one failed; the end lists the failed stages, and the exit
# status is non-zero if there is one.
# Usage: scripts/test.sh [extra pytest args]
set -uo pipefail

FAILED=()
TIMES=()

# Run stage $1: the command after it, in a subshell that stops at its first failing command.
# Its failure is noted, not fatal: the next stage runs all the same.
stage() {
  local name=$1 started=$SECONDS status
  shift
  echo "== $name"
  # A plain statement, never a condition: in `if ( set -e; ... )` bash would ignore the set -e.
  (
    set -e
    "$@"
  )
  status=$?
  TIMES+=("$name $((SECONDS - started)) s")
  if [ "$status" -ne 0 ]; then
    echo "== $name: FAILED (exit $status)" >&2
    FAILED+=("$name (exit $status)")
  fi
}

# Print each stage's time and the failed stages; return 1 if any failed.
summary() {
  echo "== summary"
  printf '   %s\n' "${TIMES[@]}"
  if [ "${#FAILED[@]}" -eq 0 ]; then
    echo "== all ${#TIMES[@]} stages passed"
    return 0
  fi
  echo "== ${#FAILED[@]} of ${#TIMES[@]} stages failed:" >&2
  printf '   %s\n' "${FAILED[@]}" >&2
  return 1
}

stage_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  echo "installing Debian's chromium for the browser tests"
  local sudo=sudo
  if [ "$(id -u)" = 0 ]; then sudo=""; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}

stage_redis() {
  command -v redis-server >/dev/null && return 0
  echo "installing Debian's redis-server for the Redis tests"
  local sudo=sudo
  if [ "$(id -u)" = 0 ]; then sudo=""; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

stage_js() {
  (cd js && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build)
  if ! git diff --quiet -- llmsock_widget/static; then
    echo "llmsock_widget/static is stale: run 'cd js && npm run build' and commit the bundle" >&2
    git --no-pager diff --stat -- llmsock_widget/static >&2
    return 1
  fi
}

stage_labextension() {
  scripts/build-labextension.sh
  if [ -n "$(git status --porcelain -- llmsock_widget/labextension)" ]; then
    echo "llmsock_widget/labextension is stale: run scripts/build-labextension.sh and commit it" >&2
    git status --short -- llmsock_widget/labextension >&2
    return 1
  fi
}

stage_venv() {
  # After the builds: the editable install copies the lab extension into the venv.
  source scripts/venv.sh dev
}

# LiteLLM's proxy, the third-party OpenAI-compatible server of tests/integration/test_litellm_proxy.py,
# gets its own environment: litellm[proxy] pins websockets<16 and python-dateutil<3, older than
# what .venv has.  Pinned: a new LiteLLM release changes its mock mode without notice.
LITELLM_SPEC=${LITELLM_SPEC:-"litellm[proxy]==1.108.7"}

stage_litellm() {
  if [ ! -x .venv-litellm/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv-litellm
  fi
  .venv-litellm/bin/python -m pip install --quiet --upgrade pip
  .venv-litellm/bin/python -m pip install --quiet "$LITELLM_SPEC"
}

stage_ruff() {
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
}

stage_notebooks() {
  # Run them as a fresh checkout would: no chats kept next to them by an earlier run.
  rm -rf notebooks/.llmsock
  .venv/bin/pytest --nbval-lax notebooks -p no:cacheprovider
}

stage_mypy() {
  .venv/bin/mypy
}

stage_pytest() {
  .venv/bin/pytest "$@"
}

stage_benchmark() {
  .venv/bin/python -m benchmarks --deltas 2000 --repeat 1
}

# Run every stage, then the summary, whose status is the script's.
main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.." || return 1
  stage "chromium" stage_chromium
  stage "redis-server" stage_redis
  stage "js: install, unit tests, bundle" stage_js
  stage "labextension: build, check the committed build" stage_labextension
  stage "python environment (.venv)" stage_venv
  stage "LiteLLM proxy environment (.venv-litellm)" stage_litellm
  stage "ruff" stage_ruff
  stage "mypy" stage_mypy
  stage "pytest (unit, integration, kernel, browser)" stage_pytest "$@"
  stage "notebooks (nbval)" stage_notebooks
  stage "benchmark (smoke run; full figures: python -m benchmarks)" stage_benchmark
  summary
}

# Sourced (to try the runner with stand-in stages), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
