"""The README's first command, scripts/lab.sh, starts JupyterLab on the quickstart, as root too."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

from tests.conftest import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


def test_lab_script_starts_jupyterlab_on_the_quickstart() -> None:
    """lab.sh (here run as this machine's user, root in CI containers) gets to "is running at"."""
    process = subprocess.Popen(
        ["bash", "scripts/lab.sh", "--no-browser", "--ServerApp.port=0", "--ServerApp.ip=127.0.0.1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the whole group (bash, pip, jupyter) can be stopped
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while True:
            # Setting up the environment may install packages first: allow it several time units.
            line = lines.get(timeout=TIMEOUT * 12)
            if line is None:
                break
            seen.append(line)
            if re.search(r"http://127\.0\.0\.1:\d+/lab", line):
                break
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=TIMEOUT * 3)
    output = "".join(seen)
    assert "--allow-root" not in output, output[-2000:]
    assert re.search(r"http://127\.0\.0\.1:\d+/lab\?token=", output), output[-2000:]
