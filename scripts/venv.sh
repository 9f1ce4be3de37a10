# Sourced by the other scripts: make .venv (with $PYTHON, default python3) and install this
# project into it with the extras named in $1 (e.g. "lab" or "dev").
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$1]"
