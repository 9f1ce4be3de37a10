"""The WebSocket outbox's flush: one loop callback for every connection, frames straight to the socket."""

from __future__ import annotations

import asyncio
import socket

import tornado.iostream

from llmsock_widget.server.websocket import Flusher, flusher_of, text_frames, write_now
from tests.conftest import TIMEOUT


class _Handler:
    """Stands for a WebSocketHandler: records when the flusher flushes it."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def _flush(self) -> None:
        self.log.append(self.name)


def test_many_connections_queued_in_one_turn_are_flushed_by_one_callback_in_order() -> None:
    async def main() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        flusher, scheduled = Flusher(), 0
        log: list[str] = []
        call_soon = loop.call_soon

        def counting(callback: object, *args: object, **kwargs: object) -> asyncio.Handle:
            nonlocal scheduled
            scheduled += getattr(callback, "__self__", None) is flusher  # not the test task's own steps
            return call_soon(callback, *args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon = counting  # type: ignore[method-assign]
        try:
            for index in range(1000):  # a thousand sessions, each with a delta this turn
                flusher.add(_Handler(f"c{index}", log), loop)  # type: ignore[arg-type]
            await asyncio.sleep(0)
        finally:
            loop.call_soon = call_soon  # type: ignore[method-assign]
        return log, scheduled

    log, scheduled = asyncio.run(main())
    assert log == [f"c{index}" for index in range(1000)]  # every connection, in the order queued
    assert scheduled == 1  # not one asyncio Handle per connection


def test_a_connection_that_queues_again_while_flushed_goes_in_the_next_turn() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        flusher = flusher_of(loop)
        log: list[str] = []

        class Again(_Handler):
            def _flush(self) -> None:
                super()._flush()
                if len(self.log) == 1:
                    flusher.add(self, loop)  # type: ignore[arg-type]

        flusher.add(Again("a", log), loop)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert log == ["a"]
        await asyncio.sleep(0)
        return log

    assert asyncio.run(main()) == ["a", "a"]
    assert asyncio.run(_same_flusher())


async def _same_flusher() -> bool:
    loop = asyncio.get_running_loop()
    return flusher_of(loop) is flusher_of(loop)


def test_frames_the_socket_takes_at_once_need_no_future_and_arrive_whole() -> None:
    async def main() -> tuple[object, bytes]:
        ours, theirs = socket.socketpair()
        stream = tornado.iostream.IOStream(ours)
        try:
            data = text_frames(['{"a":1}', '{"b":2}'])
            result = write_now(stream, data)
            theirs.settimeout(TIMEOUT)
            return result, theirs.recv(1024)
        finally:
            stream.close()
            theirs.close()

    result, received = asyncio.run(main())
    assert result is None
    assert received == b'\x81\x07{"a":1}\x81\x07{"b":2}'


def test_what_a_full_socket_does_not_take_is_buffered_and_arrives_in_order() -> None:
    async def main() -> bytes:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        stream = tornado.iostream.IOStream(ours)
        chunks = [bytes([65 + i % 26]) * 50_000 for i in range(8)]  # far more than the socket holds
        futures = [write_now(stream, chunk) for chunk in chunks]
        assert any(f is not None for f in futures)  # the socket was full: Tornado holds the rest
        theirs.setblocking(False)
        loop = asyncio.get_running_loop()
        received = bytearray()
        while len(received) < sum(map(len, chunks)):
            received += await asyncio.wait_for(loop.sock_recv(theirs, 65536), TIMEOUT)
        for future in futures:
            if future is not None:
                await asyncio.wait_for(future, TIMEOUT)
        stream.close()
        theirs.close()
        assert bytes(received) == b"".join(chunks)
        return bytes(received)

    assert len(asyncio.run(main())) == 400_000


def test_a_closed_peer_closes_the_stream_as_tornado_would() -> None:
    async def main() -> bool:
        ours, theirs = socket.socketpair()
        stream = tornado.iostream.IOStream(ours)
        theirs.close()
        try:
            for _ in range(100):  # the first send may still succeed; a later one fails
                future = write_now(stream, b"x" * 65536)
                if future is not None:
                    await asyncio.wait_for(future, TIMEOUT)
        except tornado.iostream.StreamClosedError:
            return True
        finally:
            stream.close()
        return stream.closed()

    assert asyncio.run(main())
