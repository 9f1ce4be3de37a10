"""Where a kernel keeps chats when no notebook plugin is there (VS Code, Colab, nbclient runs).

The kernel is a real ipykernel started by jupyter_client: no front end, so no plugin view
ever connects, and the notebook store falls back to files next to the notebook.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import Message, new_state
from llmsock_widget.notebook import notebookfile

from .conftest import start_kernel, stop_kernel, text_of

ASK = "__import__('llmsock_widget').ask({prompt!r}, display=False).text"


def test_without_the_plugin_chats_go_to_files_next_to_the_notebook_and_come_back(tmp_path: Path) -> None:
    """Jupyter Server names the notebook (JPY_SESSION_NAME); the chat is kept in .llmsock/<name>/."""
    first = start_kernel(tmp_path, JPY_SESSION_NAME="work/analysis.ipynb")
    try:
        first.run("%load_ext llmsock")
        where = text_of(first.run("%llmsock store"))
        assert f"files next to the notebook in {tmp_path / '.llmsock' / 'analysis'}" in where
        assert "no notebook plugin" in where
        first.run("%llmsock model builtin:0")
        first.run("%%llmsock\nmy cat is called Miso")
        saved = json.loads((tmp_path / ".llmsock" / "analysis" / "default.json").read_text())
        assert saved["messages"][0]["text"] == "my cat is called Miso"
    finally:
        stop_kernel(first)

    second = start_kernel(tmp_path, JPY_SESSION_NAME="work/analysis.ipynb")
    try:
        second.run("%load_ext llmsock")
        second.run("%llmsock model builtin:0")
        answer = second.value(ASK.format(prompt="what is my cat called?"))
        assert 'This is turn 2 of our conversation; earlier you asked "my cat is called Miso"' in answer
    finally:
        stop_kernel(second)


def test_a_saved_notebook_is_read_for_chats_when_no_plugin_is_there(tmp_path: Path) -> None:
    """VS Code names the notebook (__vsc_ipynb_file__): chats saved in its metadata come back."""
    path = tmp_path / "shared.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    state = new_state("default", ts=1000, model="builtin")
    messages = (
        Message(id="t1:u", role="user", text="the meeting is on Tuesday", turn_id="t1", ts=1000),
        Message(id="t1:a", role="assistant", text="Noted: Tuesday.", turn_id="t1", ts=1001),
    )
    notebookfile.write_session(path, replace(state, messages=messages, seq=6, revision=3, updated_at=1001))
    before = path.read_bytes()
    kernel = start_kernel(tmp_path)
    try:
        kernel.run(f"__vsc_ipynb_file__ = {str(path)!r}")
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        answer = kernel.value(ASK.format(prompt="when is the meeting?"))
        assert 'earlier you asked "the meeting is on Tuesday"' in answer
        # The open notebook is never written by the kernel; the chat goes next to it.
        assert path.read_bytes() == before
        kept = snapshot.loads((tmp_path / ".llmsock" / "shared" / "default.json").read_text())
        assert kept.messages[0].text == "the meeting is on Tuesday"
    finally:
        stop_kernel(kernel)


def test_store_and_save_magics(tmp_path: Path) -> None:
    """%llmsock store switches the store; %llmsock save writes every open chat now."""
    kernel = start_kernel(tmp_path)
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        assert "memory" in text_of(kernel.run("%llmsock store memory"))
        kernel.value(ASK.format(prompt="hello"))
        assert not (tmp_path / ".llmsock").exists()
        out = text_of(kernel.run(f"%llmsock store file {tmp_path / 'chats'}"))
        assert f"files in {tmp_path / 'chats'} (1 chat copied from the previous store)" in out
        kept = snapshot.loads((tmp_path / "chats" / "default.json").read_text())
        assert kept.messages[0].text == "hello"
        # A chat open in a view (here: a client attached from the kernel) is saved on demand.
        kernel.run(
            "import asyncio, threading\n"
            "from llmsock_widget.notebook import kernel as _k\n"
            "_s = _k.current_server()\n"
            "_noop = lambda event: None\n"
            "_attached = _s.submit(_s.hub.attach('notes', _noop)).result(10)"
        )
        assert "saved 1 chat to files in" in text_of(kernel.run("%llmsock save"))
        assert (tmp_path / "chats" / "notes.json").exists()
        status = text_of(kernel.run("%llmsock"))
        assert "store: files in" in status and "transports:" in status
    finally:
        stop_kernel(kernel)


def test_switching_back_to_a_store_brings_the_turns_it_lacks(tmp_path: Path) -> None:
    """A chat continued in another store comes back whole when the user switches back."""
    kernel = start_kernel(tmp_path)
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        kernel.run(f"%llmsock store file {tmp_path / 'chats'}")
        kernel.value(ASK.format(prompt="my cat is called Miso"))
        assert "1 chat copied" in text_of(kernel.run("%llmsock store memory"))
        kernel.value(ASK.format(prompt="and my dog is called Rex"))
        out = text_of(kernel.run(f"%llmsock store file {tmp_path / 'chats'}"))
        assert out.endswith("(1 chat copied from the previous store)"), out
        kept = snapshot.loads((tmp_path / "chats" / "default.json").read_text())
        assert [m.text for m in kept.messages if m.role == "user"] == [
            "my cat is called Miso",
            "and my dog is called Rex",
        ]
        # Nothing newer to bring: the message says so rather than "0 chats copied".
        out = text_of(kernel.run("%llmsock store memory"))
        assert "1 chat copied" in out
        out = text_of(kernel.run(f"%llmsock store file {tmp_path / 'chats'}"))
        assert out.endswith("(nothing to copy: the previous store had no chat that this one lacks)"), out
    finally:
        stop_kernel(kernel)
