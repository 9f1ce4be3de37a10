"""A real IPython kernel (jupyter_client) running this checkout, for extension and magic tests."""

from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from tests.conftest import TIMEOUT


class Kernel:
    """A started kernel with a blocking client; ``run`` executes code and returns its outputs."""

    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        self.client = manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=TIMEOUT * 3)

    @property
    def pid(self) -> int:
        return int(self.manager.provisioner.pid)  # type: ignore[union-attr]

    def submit(self, code: str) -> str:
        """Start executing ``code`` without waiting; return the message id."""
        return str(self.client.execute(code))

    def collect(self, msg_id: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Return the IOPub messages of ``msg_id`` until the kernel is idle again."""
        messages = []
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no idle status for {msg_id} within {timeout} s") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return messages

    def stream_until(self, msg_id: str, marker: str, timeout: float = TIMEOUT) -> str:
        """Return the stream text of ``msg_id`` up to ``marker``, waiting past idle for late output."""
        text = ""
        deadline = time.monotonic() + timeout
        while marker not in text:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{marker!r} never arrived; got {text!r}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                text += msg["content"]["text"]
        return text

    def run(self, code: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Execute ``code``; return its IOPub messages; fail on an error output."""
        messages = self.collect(self.submit(code), timeout)
        errors = [m["content"] for m in messages if m["msg_type"] == "error"]
        assert not errors, "\n".join("\n".join(e["traceback"]) for e in errors)
        return messages

    def value(self, expression: str) -> Any:
        """Return the JSON value of ``expression`` evaluated in the kernel."""
        out = text_of(self.run(f"import json as _j; print(_j.dumps({expression}))"))
        return json.loads(out.strip().splitlines()[-1])

    def ports(self) -> set[int]:
        """Return the kernel's own (ZMQ) ports."""
        info = self.manager.get_connection_info()
        return {int(info[k]) for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")}


def text_of(messages: list[dict[str, Any]]) -> str:
    """Return all stream text and text/plain outputs, joined."""
    parts = []
    for m in messages:
        content = m["content"]
        if m["msg_type"] == "stream":
            parts.append(content["text"])
        elif m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            data = content["data"]
            parts.append(data.get("text/plain", ""))
    return "".join(parts)


def start_kernel(cwd: Path, **env: str) -> Kernel:
    """Start a python3 kernel in ``cwd`` with ``env`` added to this process's environment."""
    manager = KernelManager(kernel_name="python3")
    # ipykernel stops forwarding file descriptors 1 and 2 to cells when it sees pytest's variable;
    # without it the kernel behaves as under Jupyter, where those descriptors do reach the cell.
    environment = {key: value for key, value in os.environ.items() if key != "PYTEST_CURRENT_TEST"}
    environment.update(env)
    manager.start_kernel(env=environment, cwd=str(cwd))
    return Kernel(manager)


def stop_kernel(kernel: Kernel) -> None:
    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A fresh python3 kernel working in the test's temporary directory, shut down after the test."""
    k = start_kernel(tmp_path)
    try:
        yield k
    finally:
        stop_kernel(k)
