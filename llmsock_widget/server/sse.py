"""``/sse``: a session's events as Server-Sent Events, for clients that cannot open a WebSocket.

GET follows a session; POST sends one prompt (or command) in its body and streams
events until the turn it started ends.  A client that stops reading is dropped after
:data:`~.limits.SSE_MAX_QUEUED` events rather than let memory grow.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import tornado.iostream

from ..core.events import ControlResult, ErrorReply, Event, ModelEnd, ModelError, Pong
from ..errors import ClientError, LlmsockError
from ..wire import protocol
from .http import GuardedHandler
from .limits import SSE_MAX_QUEUED

log = logging.getLogger("llmsock")


class SseHandler(GuardedHandler):
    """``/sse``: GET follows a session's events; POST sends a prompt (or command) and streams its turn."""

    async def get(self) -> None:
        await self._stream(command=None)

    async def post(self) -> None:
        try:
            body = self.request.body.decode("utf-8")
            command = protocol.decode(body, "envelope")
        except UnicodeDecodeError:
            self.send_json(400, {"error": {"code": "invalid_message", "message": "the body is not UTF-8"}})
            return
        except ClientError as exc:
            self.send_json(400, {"error": {"code": exc.code, "message": exc.message}})
            return
        await self._stream(command=command)

    async def _stream(self, command: protocol.Command | None) -> None:
        self._outbox: asyncio.Queue[Event | None] = asyncio.Queue()
        message_id = f"sse-{secrets.token_urlsafe(9)}"
        if isinstance(command, protocol.SendPrompt):
            command = protocol.SendPrompt(text=command.text, message_id=message_id, options=command.options)
        try:
            key, detach, _ready = await self.server.hub.attach(self.session_arg(), self._deliver)
        except LlmsockError as exc:
            status = 400 if isinstance(exc, ClientError) else 503
            self.send_json(status, {"error": {"code": exc.code, "message": exc.message}})
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.server.stats.sse_open += 1
        try:
            if command is not None:
                self.server.hub.handle(key, command, self._deliver)
            while True:
                event = await self._outbox.get()
                if event is None:  # the client went away, or fell too far behind
                    return
                self._write_event(event)
                await self.flush()
                if command is not None and _ends(event, message_id):
                    break
        except tornado.iostream.StreamClosedError:
            return
        finally:
            self.server.stats.sse_open -= 1
            await detach()
        self.finish()

    def _deliver(self, event: Event) -> None:
        if getattr(self, "_dropped", False):
            return
        if self._outbox.qsize() >= SSE_MAX_QUEUED:
            # The client stopped reading: close its connection, which also ends the pending write.
            log.warning("llmsock: ending an SSE stream whose client stopped reading")
            self._dropped = True
            self.server.stats.slow_consumers_dropped += 1
            self._outbox.put_nowait(None)
            if self.request.connection is not None:
                self.request.connection.close()  # type: ignore[attr-defined]
            return
        self._outbox.put_nowait(event)

    def _write_event(self, event: Event) -> None:
        message = protocol.sse_message(event)  # never raises: an unencodable event becomes an error
        if message is not None:
            self.write(message)
            self.server.stats.messages_out += 1

    def on_connection_close(self) -> None:
        outbox = getattr(self, "_outbox", None)
        if outbox is not None:
            outbox.put_nowait(None)


def _ends(event: Event, message_id: str) -> bool:
    """Whether ``event`` ends what a POST to /sse asked for."""
    if isinstance(event, (ModelEnd, ModelError)):
        return event.message_id == message_id
    return isinstance(event, (ErrorReply, ControlResult, Pong))
