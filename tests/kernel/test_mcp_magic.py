"""``%llmsock mcp`` in a real kernel: the real ``mcp-server-time`` added, listed, called and removed."""

from __future__ import annotations

import shlex
import sys

import pytest

from tests.conftest import TIMEOUT

from .conftest import Kernel, text_of

pytest.importorskip("mcp_server_time")

COMMAND = shlex.join([sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"])
ASK = "__import__('llmsock_widget').ask({prompt!r}, display=False).text"


def said(kernel: Kernel, code: str) -> str:
    return text_of(kernel.run(code, timeout=TIMEOUT * 2)).strip()


def test_mcp_magic_adds_lists_calls_and_removes(kernel: Kernel) -> None:
    """add names the tools; ``%llmsock mcp`` lists them; a prompt calls one; remove unregisters them."""
    kernel.run("%load_ext llmsock")
    assert said(kernel, "%llmsock mcp") == "no MCP server; add one: %llmsock mcp add NAME -- COMMAND [ARG...]"
    added = said(kernel, f"%llmsock mcp add time -- {COMMAND}")
    assert added == "MCP server 'time': time__get_current_time, time__convert_time"
    listing = said(kernel, "%llmsock mcp").splitlines()
    assert listing == [f"time: {COMMAND}", "  tools: time__get_current_time, time__convert_time"]
    answer = kernel.value(ASK.format(prompt='/tool time__get_current_time {"timezone": "UTC"}'))
    assert answer.startswith("The tool time__get_current_time returned {") and '"timezone": "UTC"' in answer
    assert "time__convert_time" in said(kernel, "%llmsock")  # the status's tools
    removed = said(kernel, "%llmsock mcp remove time")
    assert removed == "MCP server 'time' removed, and its tools: time__get_current_time, time__convert_time"
    assert said(kernel, "%llmsock mcp").startswith("no MCP server")
    asks = said(kernel, f"%llmsock mcp add time --approval -- {COMMAND}")
    assert (
        asks
        == "MCP server 'time': time__get_current_time, time__convert_time (each call waits for your approval)"
    )
    assert kernel.value("__import__('llmsock_widget').get_server().tools.get('time__convert_time').approval")


def test_a_server_that_cannot_start_is_one_line(kernel: Kernel) -> None:
    """A command that is not an MCP server: one line saying so, with the end of its stderr; no traceback."""
    kernel.run("%load_ext llmsock")
    msg_id = kernel.submit(
        f"%llmsock mcp add bad -- {shlex.quote(sys.executable)} -c \"raise SystemExit('no')\""
    )
    messages = kernel.collect(msg_id, timeout=TIMEOUT * 2)
    assert not [m for m in messages if m["msg_type"] == "error"]
    stderr = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert stderr.startswith("UsageError: %llmsock: MCP server 'bad'") and "could not start" in stderr
    assert "its stderr ends: no" in stderr
