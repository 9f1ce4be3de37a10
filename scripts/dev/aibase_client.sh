#!/usr/bin/env bash
# Development check: run seed 004's real client (the WSClient of Cantika23/aibase, unmodified)
# against llmsock under Bun, and print what works.  Skipped (exit 0) unless both are present:
#   AIBASE_SRC  the client's frontend/src directory, from a checkout of Cantika23/aibase
#               (commit 40e0c54 was run; "react", which lib/conv-id.ts imports, must resolve there,
#               e.g. after `bun install` in its frontend/)
#   BUN         the bun binary (default: bun on PATH)
# This script downloads nothing and copies no part of the client.
# CAPTURE=FILE also writes every frame both ways to FILE (see tests/fixtures/wire/aibase/).
# Usage: AIBASE_SRC=~/aibase/frontend/src scripts/dev/aibase_client.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUN=${BUN:-$(command -v bun || true)}
if [ -z "${AIBASE_SRC:-}" ] || [ ! -f "${AIBASE_SRC}/lib/ws/ws-client.ts" ]; then
  echo "aibase_client: skipped (set AIBASE_SRC to the client's frontend/src)"
  exit 0
fi
if [ -z "$BUN" ] || [ ! -x "$BUN" ]; then
  echo "aibase_client: skipped (no bun; set BUN or put bun on PATH)"
  exit 0
fi
python=${PYTHON:-$root/.venv/bin/python}
cd "$root"
AIBASE_COMMIT=${AIBASE_COMMIT:-$(git -C "$AIBASE_SRC" rev-parse --short HEAD 2>/dev/null || true)}
export AIBASE_COMMIT
AIBASE_SRC=$(cd "$AIBASE_SRC" && pwd) LLMSOCK_SERVE="$python -m llmsock_widget" "$BUN" run "$here/aibase_driver.ts"
