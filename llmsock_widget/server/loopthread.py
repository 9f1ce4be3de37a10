"""The body of a server thread: one new asyncio loop, started up, run until stopped, shut down.

Shared by :class:`llmsock_widget.server.ServerThread` and the benchmarks' bare server, so
both report startup the same way and close their loop on every path.
"""

from __future__ import annotations

import asyncio
import threading


class LoopThread:
    """A server whose loop runs on a thread of its own: ``_run`` is that thread's body.

    Subclasses write ``_startup`` (on the new loop, before it serves) and ``_shutdown``
    (after ``loop.stop()``, before the loop is closed), start a thread on ``_run``, wait
    for ``_ready`` and re-raise ``_error`` if startup failed.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None  # set while the loop exists
        self._ready = threading.Event()  # set once startup is over, after _error if it failed
        self._error: BaseException | None = None

    async def _startup(self) -> None:
        raise NotImplementedError

    async def _shutdown(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        """Run a new event loop on the calling thread until ``loop.stop()``; then shut down and close it."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # start() re-raises it in the caller's thread
            self._error = exc
            self.loop = None
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            self.loop = None
            loop.close()
