"""The websockets edge: open one connection, authenticate, and read its ready announcement.

The token goes into the ``Authorization`` header and nowhere else: websockets is
given a logger without DEBUG (at DEBUG it logs every request header) and no
proxy (a proxy would see the header).
"""

from __future__ import annotations

import asyncio
import json
import logging

from . import EXTRA_MISSING

try:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
except ImportError as exc:  # an install without the client extra
    raise ImportError(EXTRA_MISSING) from exc

from ..aio import within
from ..wire.protocol import Dialect
from .core import (
    SUBPROTOCOLS,
    ConnectFailed,
    HandshakeRefused,
    Message,
    SessionRefused,
    ready_of,
    should_reconnect,
)

MAX_FRAME = 64 << 20  # a get_history result may be large; the server's own outbound limit is 8 MiB
CLOSE_TIMEOUT = 2.0  # seconds to wait for the peer's close frame


class _Quiet(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' logger without DEBUG: at DEBUG it would log the request headers, token included."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WEBSOCKETS_LOG = _Quiet(logging.getLogger("llmsock.client.websockets"), {})


class Retry(Exception):
    """An attempt to connect failed in a way that another attempt may fix."""

    def __init__(self, detail: str, code: int | None = None) -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


async def open_connection(
    url: str, *, token: str, dialect: Dialect, open_timeout: float, heartbeat: float
) -> tuple[ClientConnection, Message, str]:
    """Open a connection to ``url``; return it, its ready announcement and that frame's text.

    Raises:
        Retry: another attempt may succeed (network, timeout, 5xx, a close before the ready).
        HandshakeRefused: 401 or 403.
        SessionRefused: a policy close (4400) before the ready.
        ConnectFailed: the server does not speak the dialect, or the URL is unusable.
    """
    subprotocol = SUBPROTOCOLS[dialect]
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[subprotocol],  # type: ignore[list-item]
            open_timeout=open_timeout,
            # After a ping timeout websockets still waits this long for the close handshake
            # of a peer it has just found silent: keep it short.
            close_timeout=min(CLOSE_TIMEOUT, open_timeout, heartbeat or CLOSE_TIMEOUT),
            ping_interval=heartbeat or None,
            ping_timeout=heartbeat or None,
            max_size=MAX_FRAME,
            proxy=None,  # a local kernel's server: never send the token through a proxy
            logger=_WEBSOCKETS_LOG,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise HandshakeRefused(_refusal(exc), status=status) from None
        raise Retry(f"HTTP {status}") from None
    except InvalidURI as exc:
        raise ConnectFailed(str(exc)) from None
    except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
        raise Retry(str(exc) or type(exc).__name__) from None
    if ws.subprotocol != subprotocol:
        await ws.close()
        raise ConnectFailed(f"the server did not accept the subprotocol {subprotocol}")
    try:
        text = await within(ws.recv(), open_timeout)
    except ConnectionClosed as exc:
        code, reason = close_of(exc)
        if not should_reconnect(code):
            raise refused(code, reason) from None
        raise Retry(f"closed ({code}) {reason}".strip(), code) from None
    except asyncio.TimeoutError:
        await ws.close()
        raise Retry(f"no ready announcement within {open_timeout} s") from None
    message = decode(text)
    if message is None or ready_of(message, dialect) is None:
        await ws.close()
        raise ConnectFailed("the server's first frame is not a ready announcement")
    return ws, message, text if isinstance(text, str) else text.decode("utf-8", errors="replace")


def decode(text: str | bytes) -> Message | None:
    """Return the JSON object in a frame, or None if it is not one."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def close_of(exc: ConnectionClosed) -> tuple[int, str]:
    """Return the close code and reason: the peer's, else ours (a ping timeout), else 1006."""
    frame = exc.rcvd or exc.sent
    return (frame.code, frame.reason) if frame is not None else (1006, "")


def refused(code: int, reason: str) -> SessionRefused:
    """Return the error for a policy close."""
    return SessionRefused(f"the server closed the connection ({code}): {reason}", close_code=code)


def _refusal(exc: InvalidStatus) -> str:
    """Return the server's refusal as a sentence (its JSON error message, when it sent one)."""
    status = exc.response.status_code
    try:
        body = json.loads(exc.response.body or b"")
        detail = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = exc.response.reason_phrase
    return f"the server refused the connection (HTTP {status}: {detail})"
