#!/usr/bin/env bash
# Set up .venv (if needed) and open JupyterLab on the quickstart notebook (builtin offline model).
# Extra arguments go to `jupyter lab` (e.g. --no-browser --port 8899).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh lab
# Containers often run as root; Jupyter refuses to start as root unless told it may.
as_root=()
if [ "$(id -u)" = 0 ]; then as_root=(--allow-root); fi
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "${as_root[@]}" "$@"
