"""The server thread's body: startup reported once, shutdown run after a stop, the loop always closed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from llmsock_widget.server.loopthread import LoopThread
from tests.conftest import TIMEOUT


class Recorder(LoopThread):
    """A loop thread that records its startup and shutdown, and may refuse to start."""

    def __init__(self, refuse: BaseException | None = None) -> None:
        super().__init__()
        self.refuse = refuse
        self.steps: list[str] = []

    async def _startup(self) -> None:
        self.steps.append("startup")
        if self.refuse is not None:
            raise self.refuse

    async def _shutdown(self) -> None:
        self.steps.append("shutdown")


def test_runs_until_stopped_then_shuts_down_and_closes() -> None:
    """The loop serves until stopped from another thread; then shutdown runs and the loop is closed."""
    owner = Recorder()
    thread = threading.Thread(target=owner._run)
    thread.start()
    assert owner._ready.wait(TIMEOUT) and owner._error is None
    loop = owner.loop
    assert loop is not None and loop.is_running()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert owner.steps == ["startup", "shutdown"] and owner.loop is None and loop.is_closed()


def test_a_failed_startup_is_reported_not_raised() -> None:
    """A startup error is kept for start() to re-raise, then ready is set; no loop is left, no shutdown."""
    owner = Recorder(refuse=OSError(98, "Address already in use"))
    owner._run()
    assert owner._ready.is_set() and isinstance(owner._error, OSError) and owner._error.errno == 98
    assert owner.loop is None and owner.steps == ["startup"]


@pytest.fixture(autouse=True)
def _no_loop_left_behind() -> Iterator[None]:
    """_run sets the calling thread's loop; give the main thread none back afterwards."""
    yield
    asyncio.set_event_loop(None)
