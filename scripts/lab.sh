#!/usr/bin/env bash
# Set up .venv (if needed) and open JupyterLab on the quickstart notebook (builtin offline model).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[lab]"
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "$@"
