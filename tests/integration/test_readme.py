"""The Python samples of the README and of docs/configuration.md run as written, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


def python_block(document: Path, heading: str) -> str:
    """Return the first fenced Python block under ``heading`` (before the next heading of its level)."""
    text = document.read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    section = text.split(f"\n{heading}\n", 1)[1]
    section = re.split(rf"\n{level} ", section, maxsplit=1)[0]
    found = re.search(r"^```python\n(.*?)^```$", section, re.M | re.S)
    assert found is not None, f"no Python sample under {heading!r} in {document.name}"
    return found.group(1)


def run_sample(code: str, cwd: Path) -> list[str]:
    """Run ``code`` as a script in a fresh interpreter, as a reader would; return its stdout lines."""
    script = cwd / "sample.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT * 3
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_readme_client_sample_runs_as_written(tmp_path: Path) -> None:
    """The README's script starts a server, gets an answer, streams another, and stops."""
    code = python_block(ROOT / "README.md", "## Use it from Python, outside a notebook")
    lines = run_sample(code, tmp_path)
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws", lines[0])
    assert lines[1] == "stop Hello from Python"
    assert lines[2].startswith('You said: "What can you do?". This is turn 2 of our conversation')
    assert lines[-1] == "(end)"


def test_the_configuration_client_sample_runs_as_written(tmp_path: Path) -> None:
    """The Python client's sample in docs/configuration.md, section 4.0, prints a finished answer."""
    code = python_block(ROOT / "docs" / "configuration.md", "#### The Python client")
    lines = run_sample(code, tmp_path)
    assert lines[0].startswith('stop You said: "Summarise the notes.". This is the first turn')
