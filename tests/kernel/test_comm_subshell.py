"""The widget's comm handled on a kernel subshell while a CPU-bound cell runs (ipykernel 7+).

JupyterLab 4.4+ and Notebook 7.4+ send widget comm messages to a kernel subshell
(``commsOverSubshells``); this test does the same with jupyter_client: it creates a subshell
on the control channel and sends the view's comm messages there, while the main shell runs a
busy cell.
"""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import ipykernel
import pytest

from tests.conftest import BUSY_CELL as BUSY
from tests.conftest import TIMEOUT

from .conftest import Kernel, text_of


def create_subshell(kernel: Kernel) -> str:
    """Ask the kernel for a subshell on the control channel; return its id."""
    client = kernel.client
    request = client.session.msg("create_subshell_request", {})
    client.control_channel.send(request)
    reply = client.get_control_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"], reply
    assert reply["content"]["status"] == "ok", reply["content"]
    return str(reply["content"]["subshell_id"])


def view_says(kernel: Kernel, comm_id: str, subshell: str, content: dict[str, Any]) -> None:
    """Send what a chat view sends (a custom widget message), to ``subshell``."""
    client = kernel.client
    data = {"method": "custom", "content": content}
    message = client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    message["header"]["subshell_id"] = subshell
    client.shell_channel.send(message)


class Views:
    """What the widget sends its views, read from IOPub; the busy cell's messages on the side."""

    def __init__(self, kernel: Kernel, comm_id: str) -> None:
        self.kernel = kernel
        self.comm_id = comm_id
        self.cell: list[dict[str, Any]] = []  # IOPub messages of the busy cell
        self.cell_id = ""

    def wait_for(self, predicate: Any, what: str) -> dict[str, Any]:
        """Return the first widget message that matches ``predicate``, reading IOPub."""
        deadline = time.monotonic() + TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = self.kernel.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                break
            if self.cell_id and msg["parent_header"].get("msg_id") == self.cell_id:
                self.cell.append(msg)
            if msg["msg_type"] != "comm_msg" or msg["content"]["comm_id"] != self.comm_id:
                continue
            content = msg["content"]["data"].get("content")
            if isinstance(content, dict) and predicate(content):
                return content
        raise TimeoutError(f"no {what} within {TIMEOUT} s")

    def cell_text(self) -> str:
        return text_of(self.cell)

    def cell_done(self) -> bool:
        return any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in self.cell)


def events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the session events in a ``frames`` message."""
    frames = [json.loads(f) for f in message.get("frames", ())]
    return [f["data"]["event"] for f in frames if isinstance(f.get("data"), dict) and "event" in f["data"]]


def has_event(kind: str, **fields: Any) -> Any:
    def match(message: dict[str, Any]) -> bool:
        return message.get("kind") == "frames" and any(
            e.get("type") == kind and all(e.get(k) == v for k, v in fields.items()) for e in events(message)
        )

    return match


def test_stop_over_a_subshell_comm_ends_the_answer_while_a_cpu_bound_cell_runs(kernel: Kernel) -> None:
    """Stop sent over the widget's comm to a subshell ends the answer while a busy cell runs."""
    if int(ipykernel.__version__.split(".")[0]) < 7:
        pytest.skip(f"ipykernel {ipykernel.__version__} has no subshells (ipykernel 7+ has)")
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin")
    out = text_of(
        kernel.run(
            "from llmsock_widget import ChatWidget\nw = ChatWidget(session='busy')\nprint(w.comm.comm_id)"
        )
    )
    comm_id = out.strip().splitlines()[-1]
    subshell = create_subshell(kernel)
    views = Views(kernel, comm_id)

    view_says(kernel, comm_id, subshell, {"kind": "link", "link": "v1", "session": "busy"})
    views.wait_for(lambda m: m.get("kind") == "linked", "linked")
    view_says(kernel, comm_id, subshell, {"kind": "send", "link": "v1", "frame": "/slow 20 /long 5000"})
    views.wait_for(has_event("delta"), "first delta")

    views.cell_id = kernel.submit(BUSY)
    views.wait_for(lambda m: "busy" in views.cell_text(), "the busy cell's start")
    stop = {"type": "control", "id": "stop-1", "data": {"type": "abort"}}
    view_says(kernel, comm_id, subshell, {"kind": "send", "link": "v1", "frame": json.dumps(stop)})
    views.wait_for(has_event("end", finishReason="aborted"), "the aborted end")
    assert not views.cell_done() and "done" not in views.cell_text(), "Stop did not wait for the cell"

    kernel.manager.interrupt_kernel()  # end the busy cell now rather than when its clock runs out
