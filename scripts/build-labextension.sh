#!/usr/bin/env bash
# Build the JupyterLab 4 / Notebook 7 extension "llmsock-notebook" (js/labextension) into
# llmsock_widget/labextension, which is committed and shipped in the wheel (see pyproject.toml).
# Needs only node/npm: the builder is the npm package @jupyter/builder, run directly; the core
# metadata it builds against is the pinned @jupyterlab/core-meta, so the output is the same on
# every machine and in every checkout (scripts/test.sh can rebuild and compare it).
# package.json pins @rspack/core with "overrides" because the newest release lacked some of its
# per-platform bindings on the registry, and `npm ci` refuses a lock file without them.
set -euo pipefail
cd "$(dirname "$0")/../js/labextension"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
