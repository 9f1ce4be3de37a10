"""The accept loop: connections from the listening sockets to Tornado's HTTP server.

Ours rather than ``HTTPServer.add_sockets``: Tornado's logs a traceback for each failed
``accept`` and retries at once, so a process out of file descriptors spins its loop.  Here
a failed accept (EMFILE, ENFILE, ENOMEM) pauses accepting for a short, growing while, with
one warning every ``ACCEPT_WARN_EVERY`` seconds, and the oldest connection still without
a token gives way to a new one (:class:`.guard.PendingConnections`).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import tornado.httpserver
import tornado.iostream

from .guard import PendingConnections

log = logging.getLogger("llmsock")

ACCEPT_BATCH = 128  # connections taken per wake-up of the listening socket (Tornado's backlog)
ACCEPT_BACKOFF_MIN = 0.05  # seconds accepting pauses after a failed accept (EMFILE, ENFILE, ENOMEM) ...
ACCEPT_BACKOFF_MAX = 2.0  # ... doubling while it keeps failing, up to this
ACCEPT_WARN_EVERY = 30.0  # seconds between warnings about it


class Acceptor:
    """Accept on listening sockets, on the running loop, and hand each connection to ``http``."""

    def __init__(
        self,
        http: tornado.httpserver.HTTPServer,
        pending: PendingConnections[tornado.iostream.IOStream],
    ) -> None:
        self.http = http
        self.pending = pending
        self._sockets: list[socket.socket] = []
        self._backoff = 0.0
        self._warned = -1e9

    def listen(self, sockets: list[socket.socket]) -> None:
        """Start accepting on ``sockets`` (call on the server's loop)."""
        self._sockets = sockets
        for sock in sockets:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (call on the server's loop)."""
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            if sock.fileno() != -1:
                loop.remove_reader(sock.fileno())
                sock.close()
        self._sockets = []

    def _accept(self, sock: socket.socket) -> None:
        """Accept what is waiting on ``sock`` and hand it to the HTTP server; never raise."""
        for _ in range(ACCEPT_BATCH):
            try:
                connection, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._pause(sock, exc)
                return
            self._backoff = 0.0
            try:
                stream = tornado.iostream.IOStream(connection, max_buffer_size=self.http.max_buffer_size)
                for old in self.pending.add(stream):
                    old.close()  # the oldest socket still without a token gives way
                self.http.handle_stream(stream, address)
            except Exception:
                log.exception("llmsock: could not serve a new connection")
                connection.close()

    def _pause(self, sock: socket.socket, exc: OSError) -> None:
        """Stop accepting on ``sock`` for a short, growing while (out of descriptors or memory)."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        self._backoff = min(ACCEPT_BACKOFF_MAX, max(ACCEPT_BACKOFF_MIN, 2 * self._backoff))
        now = loop.time()
        if now - self._warned >= ACCEPT_WARN_EVERY:
            self._warned = now
            log.warning(
                "llmsock: cannot accept connections (%s); pausing %.1f s (%d waiting for a token)",
                exc.strerror or exc,
                self._backoff,
                len(self.pending),
            )
        loop.call_later(self._backoff, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        if sock.fileno() != -1:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)
