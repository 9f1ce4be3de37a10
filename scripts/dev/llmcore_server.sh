#!/usr/bin/env bash
# Development aid: start a chat server built on llm-core (theGeekist/llm-core) under Bun, the peer that
# `python -m benchmarks peer` measures llmsock against.  Skipped (exit 0) unless both are present:
#   LLMCORE_SERVER_DIR  a directory holding the server's index.ts, assembled by hand from llm-core's
#                       example server (examples/kitchen-sink/server at tag v1.21.5: its index.ts,
#                       transport.ts, protocol.ts, messages.ts and socket-data.ts, with the provider
#                       replaced by a local model answering "/long N" with the builtin model's N
#                       tokens) and able to import @geekist/llm-core (docs/benchmarks.md, section 8)
#   BUN                 the bun binary (default: bun on PATH)
# This script downloads, copies and builds nothing; it only starts what is there.
# PORT (default 0: any free port) and HOST (default 127.0.0.1) are passed to the server, which prints
# its WebSocket URL; the script first prints the server's process id (for --peer-pid).
# Usage: LLMCORE_SERVER_DIR=/tmp/llmcore-bench/server BUN=/path/to/bun scripts/dev/llmcore_server.sh
#        then: python -m benchmarks peer --url ws://127.0.0.1:PORT/ws --peer-pid PID
set -euo pipefail
BUN=${BUN:-$(command -v bun || true)}
if [ -z "${LLMCORE_SERVER_DIR:-}" ] || [ ! -f "${LLMCORE_SERVER_DIR}/index.ts" ]; then
  echo "llmcore_server: skipped (set LLMCORE_SERVER_DIR to the directory of the server's index.ts)"
  exit 0
fi
if [ -z "$BUN" ] || [ ! -x "$BUN" ]; then
  echo "llmcore_server: skipped (no bun; set BUN or put bun on PATH)"
  exit 0
fi
# A burst opens 1,000 connections at once: let the server hold them.
ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
cd "$LLMCORE_SERVER_DIR"
echo "llmcore_server: pid $$"
HOST=${HOST:-127.0.0.1} PORT=${PORT:-0} exec "$BUN" run index.ts
