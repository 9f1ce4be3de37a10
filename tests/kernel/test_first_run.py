"""The first Run All of a notebook: no stray files beside it, and one answer to "where is my chat?".

The kernel is a real ipykernel told the notebook's path (``JPY_SESSION_NAME``, as Jupyter
Server does) with no front end: a chat view's hello, which a browser sends once the cells
queued before it have run, is sent here from the kernel itself when the test wants it.
"""

from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMEOUT

from .conftest import Kernel, start_kernel, stop_kernel, text_of

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
WAITING = "notebook metadata (waiting for the notebook plugin)"

# What a chat view sends when it starts, to the first ChatWidget of the user's namespace.
HELLO = (
    "from llmsock_widget.notebook.widget import ChatWidget as _ChatWidget\n"
    "_widget = next(v for v in [*globals().values(), *Out.values()] if isinstance(v, _ChatWidget))\n"
    "_widget._on_message(_widget, {{'kind': 'hello', 'origin': 'http://127.0.0.1:8888',"
    " 'plugin': {plugin}, 'snapshots': {{}}}}, [])"
)


@pytest.fixture
def notebook_kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A kernel for ``notebooks/quickstart.ipynb`` in ``tmp_path``, with the default store."""
    kernel = start_kernel(tmp_path, JPY_SESSION_NAME="notebooks/quickstart.ipynb")
    try:
        kernel.run("import os; os.environ.pop('LLMSOCK_STORE', None)")  # the default store
        yield kernel
    finally:
        stop_kernel(kernel)


def quickstart_cells() -> list[str]:
    """Return the code cells of the quickstart notebook, in order."""
    notebook = json.loads(QUICKSTART.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def run_all(kernel: Kernel, sidecar: Path) -> str:
    """Run the quickstart's cells as Run All does; fail if a file appears beside it; return the output."""
    output = ""
    for source in quickstart_cells():
        output += text_of(kernel.run(source, timeout=TIMEOUT * 3))
        assert not sidecar.exists(), f"{sidecar} was written by the cell {source!r}"
    return output


def store_row(status: str) -> str:
    """Return the ``store`` row of ``%llmsock``'s plain-text status."""
    return next(line for line in status.splitlines() if line.startswith("store: "))[len("store: ") :]


def say_hello(kernel: Kernel, *, plugin: bool) -> list[dict[str, Any]]:
    """Send the widget a view's hello; return what it sent its views, up to its ``connect`` answer."""
    kernel.submit(HELLO.format(plugin=plugin))
    sent: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    while not sent or sent[-1]["kind"] != "connect":
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the views never got the connect answer; they got {sent}"
        try:
            msg = kernel.client.get_iopub_msg(timeout=remaining)
        except queue.Empty:
            continue
        assert msg["msg_type"] != "error", "\n".join(msg["content"]["traceback"])
        if msg["msg_type"] == "comm_msg":
            content = msg["content"]["data"].get("content")
            if isinstance(content, dict) and "kind" in content:
                sent.append(content)
    return sent


def wait_for_file(path: Path) -> dict[str, Any]:
    """Return the JSON of ``path`` once it exists (written by the kernel on a thread of its own)."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.05)
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_run_all_writes_no_file_and_the_status_and_the_chat_say_the_same(
    notebook_kernel: Kernel, tmp_path: Path
) -> None:
    """The issue's case: Run All, then the chat view's hello with the plugin comes."""
    sidecar = tmp_path / ".llmsock"
    output = run_all(notebook_kernel, sidecar)
    # %llmsock, the notebook's last cell, says where the chat will be, not "files".
    assert f"store: {WAITING}" in output
    # ... and that the chat view above has not connected yet (its connection comes after Run All).
    assert "connections: 0 (a chat view has not connected yet: run %llmsock again once it has)" in output
    # A magic's answer reads as plain text in the cell, not as a quoted Python string.
    assert text_of(notebook_kernel.run("%llmsock store")) == f"chats are kept in: {WAITING}"

    sent = say_hello(notebook_kernel, plugin=True)
    # Every chat the kernel held reaches the notebook's metadata with the plugin's first push.
    kept = {m["session"]: m["snapshot"] for m in sent if m["kind"] == "snapshot"}
    assert [message["text"] for message in kept["default"]["messages"]][:1] == ["What can you do?"]
    chat_says = sent[-1]["store"]
    assert chat_says.startswith("notebook metadata") and "waiting" not in chat_says
    status = text_of(notebook_kernel.run("%llmsock"))
    assert store_row(status) == chat_says
    assert "connections: 0\n" in status  # the view said hello: nothing is pending any more
    assert (
        text_of(notebook_kernel.run("%llmsock save"))
        == f"no chat is open; every chat is already saved in {chat_says}"
    )
    assert not sidecar.exists()


def test_a_view_without_the_plugin_sends_the_chats_to_files_at_once(
    notebook_kernel: Kernel, tmp_path: Path
) -> None:
    """VS Code, Colab, a front end without the plugin: the held chats are written after its hello."""
    run_all(notebook_kernel, tmp_path / ".llmsock")
    chat_says = say_hello(notebook_kernel, plugin=False)[-1]["store"]
    folder = tmp_path / ".llmsock" / "quickstart"
    assert chat_says == f"files next to the notebook in {folder} (no notebook plugin connected)"
    assert store_row(text_of(notebook_kernel.run("%llmsock"))) == chat_says
    saved = wait_for_file(folder / "default.json")
    assert saved["messages"][0]["text"] == "What can you do?"


def test_with_no_front_end_the_chats_reach_files_when_the_kernel_exits(tmp_path: Path) -> None:
    """nbclient or papermill: no view ever says hello; the chats are written as the kernel shuts down."""
    kernel = start_kernel(tmp_path, JPY_SESSION_NAME="analysis.ipynb")
    try:
        kernel.run("import os; os.environ.pop('LLMSOCK_STORE', None)")
        kernel.run(
            "%load_ext llmsock\n%llmsock model builtin:0\nfrom llmsock_widget import ChatWidget\nChatWidget()"
        )
        kernel.run("%%llmsock\nmy cat is called Miso")
        assert not (tmp_path / ".llmsock").exists()
    finally:
        kernel.client.stop_channels()
        kernel.manager.shutdown_kernel(now=False)  # a shutdown request, as nbclient sends
    saved = json.loads((tmp_path / ".llmsock" / "analysis" / "default.json").read_text(encoding="utf-8"))
    assert saved["messages"][0]["text"] == "my cat is called Miso"


def test_an_idle_kernel_stops_waiting_for_a_hello(notebook_kernel: Kernel, tmp_path: Path) -> None:
    """When the kernel has been idle HELLO_WAIT seconds with no hello, the chats go to files."""
    notebook_kernel.run("import llmsock_widget.notebook.kernel as _k; _k.HELLO_WAIT = 0.2")
    notebook_kernel.run(
        "%load_ext llmsock\n%llmsock model builtin:0\nfrom llmsock_widget import ChatWidget\nChatWidget()"
    )
    notebook_kernel.run("%%llmsock\nmy cat is called Miso")
    saved = wait_for_file(tmp_path / ".llmsock" / "quickstart" / "default.json")
    assert saved["messages"][0]["text"] == "my cat is called Miso"
    where = text_of(notebook_kernel.run("%llmsock store"))
    assert "files next to the notebook" in where and os.fspath(tmp_path / ".llmsock") in where


def test_without_a_chat_widget_nothing_is_held(notebook_kernel: Kernel, tmp_path: Path) -> None:
    """A notebook that only uses %%llmsock has no view to wait for: its chat goes to a file at once."""
    notebook_kernel.run("%load_ext llmsock\n%llmsock model builtin:0")
    notebook_kernel.run("%%llmsock\nmy cat is called Miso")
    notebook_kernel.run("%llmsock save")
    assert (tmp_path / ".llmsock" / "quickstart" / "default.json").exists()
