"""One Answer: the kernel's ask() and the Python client's ask() hand back the same kind of value."""

from __future__ import annotations

from typing import Any

from llmsock_widget.client import Answer, Client
from llmsock_widget.notebook import answer
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT


def test_kernel_and_client_answers_are_one_type(server: ServerThread, run: Any) -> None:
    """Both ways of asking return the same Answer, with the session and the prompt's message id filled."""
    in_kernel = answer.ask(
        "Tell me about sockets", session="one", server=server, display=False, timeout=TIMEOUT
    )

    async def from_client() -> Answer:
        async with Client(server.url, token=server.token, open_timeout=TIMEOUT) as client:
            return await client.ask("Tell me about sockets", timeout=TIMEOUT)

    over_socket = run(from_client())
    assert type(in_kernel) is type(over_socket) is Answer
    assert in_kernel.finish_reason == over_socket.finish_reason == "stop"
    assert in_kernel.text == over_socket.text and in_kernel.text.startswith("You said")
    assert in_kernel.session == "one" and in_kernel.message_id.startswith("ask-")
