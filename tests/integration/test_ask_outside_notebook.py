"""``llmsock_widget.ask()`` in a script: where the chat is kept is a visible choice, not a surprise.

Outside a notebook's kernel the default store is memory: two scripts run one after the other
in one folder do not continue each other's chat, and no ``.llmsock`` folder appears there.
The first ``ask()`` says on stderr where chats are kept; a chosen store is used and named.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TIMEOUT

SCRIPT = """
import llmsock_widget
llmsock_widget.get_server().set_model("builtin:0")
first = llmsock_widget.ask({prompt!r}, display=False)
second = llmsock_widget.ask("and then?", display=False)
print(first.text.splitlines()[0])
llmsock_widget.stop_server()
"""


def run_script(cwd: Path, prompt: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a script that asks twice, in ``cwd``, with ``env`` (and no LLMSOCK_STORE unless given)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LLMSOCK_STORE", "JPY_SESSION_NAME")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(prompt=prompt)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=True,
    )


def notes(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Return the lines of stderr that say where chats are kept."""
    return [line for line in result.stderr.splitlines() if "chats are kept in" in line]


def test_two_scripts_in_one_folder_do_not_share_a_chat_and_write_nothing(tmp_path: Path) -> None:
    first = run_script(tmp_path, "my cat is called Miso")
    second = run_script(tmp_path, "what is my cat called?")
    assert "first turn" in second.stdout and "Miso" not in second.stdout
    assert not (tmp_path / ".llmsock").exists()
    # Said once per script (two asks each), with how to keep chats.
    for result in (first, second):
        assert notes(result) == [
            "llmsock: chats are kept in memory (lost when this process ends); to keep them, call"
            ' llmsock_widget.set_store("file:<directory>") or set LLMSOCK_STORE=file:<directory>'
        ]


def test_a_chosen_store_keeps_the_chat_and_is_named(tmp_path: Path) -> None:
    chats = tmp_path / "chats"
    run_script(tmp_path, "my cat is called Miso", LLMSOCK_STORE=f"file:{chats}")
    second = run_script(tmp_path, "what is my cat called?", LLMSOCK_STORE=f"file:{chats}")
    assert 'earlier you asked "my cat is called Miso"' in second.stdout
    assert notes(second) == [f"llmsock: chats are kept in files in {chats}"]
    assert (chats / "default.json").exists() and not (tmp_path / ".llmsock").exists()
