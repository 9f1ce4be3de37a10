#!/usr/bin/env bash
# Set up .venv (if needed) and open JupyterLab on the quickstart notebook (builtin offline model).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh lab
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "$@"
