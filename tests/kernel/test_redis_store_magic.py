"""``%llmsock store redis://...`` in a real kernel: Redis down is one line; a live one keeps the chats."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redisserver import RedisServer

from .conftest import Kernel, start_kernel, stop_kernel, text_of
from .test_magic_errors import outcome


@pytest.fixture
def kernel_on_memory(tmp_path: Path) -> Iterator[Kernel]:
    kernel = start_kernel(tmp_path, LLMSOCK_STORE="memory")
    try:
        kernel.run("%load_ext llmsock")
        yield kernel
    finally:
        stop_kernel(kernel)


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: a connection there is refused
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_redis_that_is_down_is_one_line_and_the_kernel_keeps_its_store(kernel_on_memory: Kernel) -> None:
    port = _closed_port()
    lines, errors = outcome(kernel_on_memory, f"%llmsock store redis://:sesame-77@127.0.0.1:{port}/0")
    assert errors == []
    assert lines == [
        f"UsageError: %llmsock: Redis at redis://:***@127.0.0.1:{port}/0 is unavailable: connection refused"
    ]
    said = text_of(kernel_on_memory.run("%llmsock store"))
    assert "chats are kept in: memory" in said
    assert kernel_on_memory.value("1 + 1") == 2


def test_a_live_redis_keeps_the_kernels_chats(kernel_on_memory: Kernel, redis_server: RedisServer) -> None:
    """The magic moves the kernel's chats to Redis; ask() then saves there, and it says where."""
    kernel_on_memory.run("import llmsock_widget\nllmsock_widget.ask('before', display=False, timeout=30)")
    said = text_of(kernel_on_memory.run(f"%llmsock store {redis_server.url}"))
    assert f"chats are kept in: Redis at redis://:***@127.0.0.1:{redis_server.port}/0" in said
    assert "1 chat copied from the previous store" in said
    assert redis_server.password not in said
    stored = redis_server.client().hget("llmsock:{default}:snapshot", "revision")
    redis_server.client().delete("llmsock:{default}:snapshot")
    assert stored is not None and int(stored) >= 1


def test_a_kernel_whose_redis_is_down_at_start_loads_and_says_why_each_chat_cannot_open(
    tmp_path: Path,
) -> None:
    """LLMSOCK_REDIS_URL to a dead Redis: %load_ext works, a prompt fails with the URL, never the password."""
    port = _closed_port()
    kernel = start_kernel(tmp_path, LLMSOCK_REDIS_URL=f"redis://:sesame-77@127.0.0.1:{port}/0")
    try:
        kernel.run("%load_ext llmsock")
        said = text_of(kernel.run("%llmsock store"))
        assert f"Redis at redis://:***@127.0.0.1:{port}/0" in said and "sesame-77" not in said
        messages = kernel.collect(
            kernel.submit("import llmsock_widget\nllmsock_widget.ask('hi', display=False)")
        )
        failure = " ".join(
            m["content"]["evalue"] if m["msg_type"] == "error" else str(m["content"].get("text", ""))
            for m in messages
            if m["msg_type"] in ("error", "stream")
        )
        assert f"redis://:***@127.0.0.1:{port}/0 is unavailable" in failure and "sesame-77" not in failure
        assert kernel.value("1 + 1") == 2  # the kernel goes on
    finally:
        stop_kernel(kernel)
