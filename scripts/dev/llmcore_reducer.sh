#!/usr/bin/env bash
# Development check: feed llmsock's llmcore-dialect frames (tests/fixtures/wire/llmcore/session.json,
# captured from the server) to llm-core's own interaction reducer under Bun, and print what works.
# Skipped (exit 0) unless both are present:
#   LLMCORE_SRC  a checkout of theGeekist/llm-core (tag v1.21.5 was run), holding
#                src/interaction/reducer.ts and the package.json whose "imports" resolve it
#   BUN          the bun binary (default: bun on PATH)
# This script downloads nothing and copies no part of llm-core.  (The npm package
# @geekist/llm-core 1.21.5 cannot be imported as published: its dist imports "#shared/*", which its
# package.json maps to src/*.ts files the package does not ship.)
# FIXTURE=FILE feeds another capture.  To capture anew: .venv/bin/python -m tests.integration.test_llmcore_dialect
# Usage: LLMCORE_SRC=~/llm-core scripts/dev/llmcore_reducer.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUN=${BUN:-$(command -v bun || true)}
if [ -z "${LLMCORE_SRC:-}" ] || [ ! -f "${LLMCORE_SRC}/src/interaction/reducer.ts" ]; then
  echo "llmcore_reducer: skipped (set LLMCORE_SRC to a checkout of theGeekist/llm-core)"
  exit 0
fi
if [ -z "$BUN" ] || [ ! -x "$BUN" ]; then
  echo "llmcore_reducer: skipped (no bun; set BUN or put bun on PATH)"
  exit 0
fi
fixture=$(cd "$root" && realpath "${FIXTURE:-tests/fixtures/wire/llmcore/session.json}")
src=$(cd "$LLMCORE_SRC" && pwd)
# Run from the checkout, so Bun resolves the reducer's "#shared/*" imports with llm-core's own package.json.
cd "$src"
LLMCORE_REDUCER="$src/src/interaction/reducer.ts" FIXTURE="$fixture" "$BUN" run "$here/llmcore_reducer.ts"
