"""Comm fallback: how many comm messages a long answer makes, against Jupyter's IOPub rate limit.

One session streams ``deltas`` deltas (the builtin model's ``/long N``, unpaced or at a given
pace).  Two listeners are attached to it at once, so they see the same events at the same times:

* the :class:`~llmsock_widget.server.commlink.CommLink` the kernel uses when the browser cannot reach
  the server's port (one message per 40 ms at most, runs of deltas merged into one);
* a naive link that sends every frame as a comm message of its own.

Each ``send`` is recorded with its CLOCK_MONOTONIC time (nothing is sent anywhere).  From the
times come the message count and the peak of messages in any one-second window.

**The delivered share is a simulation.**  Jupyter Server drops IOPub messages past a rate
(``ServerApp.iopub_msg_rate_limit``, 1,000 a second, over ``rate_limit_window``, 3 s).
:func:`jupyter_rate_limit` replays the recorded times through a copy of that window logic, as in
``jupyter_server/services/kernels/connection/channels.py``
(``ZMQChannelsWebsocketConnection._limit_rate``, jupyter_server 2.x): a message is counted in
the window for 3 s; while the window's count over 3 s exceeds 1,000 a second, messages are
dropped (and not counted) until it falls below 800 a second.  Comm messages carry no ``stream``
bytes, so the data-rate limit never applies to them, and the reset that a kernel's
``status: idle`` message causes is left out (a background thread's messages may well come while
no cell runs and no status is sent).  Other IOPub traffic of the kernel is not counted either.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from llmsock_widget.core.events import Event
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.commlink import CommLink
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.wire.protocol import SendPrompt

from .common import BenchFailure, start_server, table

IOPUB_MSG_RATE_LIMIT = 1000.0  # jupyter_server's ServerApp.iopub_msg_rate_limit default (messages/s)
RATE_LIMIT_WINDOW = 3.0  # ServerApp.rate_limit_window default (s)


def jupyter_rate_limit(
    times: list[float], *, limit: float = IOPUB_MSG_RATE_LIMIT, window: float = RATE_LIMIT_WINDOW
) -> list[bool]:
    """Return, for each message time (s, ascending), whether Jupyter Server's IOPub limiter passes it.

    A copy of the message-rate part of ``_limit_rate`` in jupyter_server's channels.py.
    """
    queue: deque[float] = deque()  # when each counted message leaves the window
    count = 0
    exceeded = False
    passed = []
    for now in times:
        while queue and now >= queue[0]:
            queue.popleft()
            count -= 1
        count += 1
        queue.append(now + window)
        rate = count / window
        if limit > 0 and rate > limit:
            exceeded = True
        elif exceeded and rate < 0.8 * limit:
            exceeded = False
        if exceeded:  # not sent: not counted
            count -= 1
            queue.pop()
        passed.append(not exceeded)
    return passed


def peak_per_second(times: list[float]) -> int:
    """Return the most messages within any window of one second."""
    peak, first = 0, 0
    for last, now in enumerate(times):
        while now - times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


class Recorder:
    """Stands in for a comm's ``send``: keeps each message and its time (read afterwards)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.frames: list[list[str]] = []
        self.ended = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        self.times.append(time.monotonic())
        frames = list(message.get("frames", ()))
        self.frames.append(frames)
        if any('"type":"end"' in frame for frame in frames):
            self.ended.set()

    def texts(self) -> list[int]:
        """Return how many characters of answer text each message carried."""
        return [sum(_delta_chars(frame) for frame in frames) for frames in self.frames]


def _delta_chars(frame: str) -> int:
    if '"type":"delta"' not in frame:
        return 0
    return len(json.loads(frame)["data"]["event"].get("text", ""))


class NaiveLink:
    """One comm message per frame: what a link without batching would send."""

    def __init__(self, server: ServerThread, recorder: Recorder) -> None:
        self.server = server
        self.recorder = recorder

    def deliver(self, event: Event) -> None:
        for frame in self.server.frames(event, "envelope"):
            self.recorder.send({"kind": "frames", "frames": [frame]})


async def _attach(server: ServerThread, link: CommLink, naive: NaiveLink) -> str:
    await link.open(None, None)
    if link.session_id is None:
        raise BenchFailure("the comm link did not attach")
    await server.hub.attach(link.session_id, naive.deliver)
    return link.session_id


def _reply(event: Event) -> None:
    pass


async def _ask(server: ServerThread, session: str, prompt: str) -> None:
    server.hub.handle(session, SendPrompt(text=prompt), _reply)


def scenario(*, deltas: int, pace: float, timeout: float) -> dict[str, Any]:
    """Stream ``deltas`` deltas at ``pace`` per second (0: unpaced) to both links; return their figures."""
    server = start_server(model=BuiltinModel(tokens_per_second=None))
    try:
        batched, naive = Recorder(), Recorder()
        link = CommLink(server, "bench", batched.send)
        session = server.submit(_attach(server, link, NaiveLink(server, naive))).result(timeout)
        prompt = f"/long {deltas}" if not pace else f"/slow {pace:g} /long {deltas}"
        server.submit(_ask(server, session, prompt)).result(timeout)
        budget = timeout + (deltas / pace if pace else deltas / 1000)
        if not (batched.ended.wait(budget) and naive.ended.wait(timeout)):
            raise BenchFailure("the answer did not end in time")
        server.call_soon(link.close)
    finally:
        server.stop()
    return {
        "deltas": deltas,
        "pace": pace,
        "links": [_figures("CommLink (40 ms)", batched), _figures("one per frame", naive)],
    }


def _figures(name: str, recorder: Recorder) -> dict[str, Any]:
    times, texts = recorder.times, recorder.texts()
    passed = jupyter_rate_limit(times)
    total_text = sum(texts)
    seconds = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "link": name,
        "messages": len(times),
        "seconds": seconds,
        "peak_per_second": peak_per_second(times),
        "delivered_messages": sum(passed),
        "delivered_text_share": sum(t for t, ok in zip(texts, passed, strict=True) if ok) / total_text
        if total_text
        else 1.0,
    }


def run(*, deltas: int, paces: list[float], timeout: float = 60.0) -> dict[str, Any]:
    """Run :func:`scenario` at each pace; return the report."""
    return {
        "deltas": deltas,
        "limit": IOPUB_MSG_RATE_LIMIT,
        "window": RATE_LIMIT_WINDOW,
        "results": [scenario(deltas=deltas, pace=pace, timeout=timeout) for pace in paces],
    }


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = []
    for result in report["results"]:
        pace = "unpaced" if not result["pace"] else f"{result['pace']:,.0f}/s"
        for link in result["links"]:
            rows.append(
                [
                    f"{pace}, {link['link']}",
                    link["messages"],
                    f"{link['seconds']:.2f}",
                    link["peak_per_second"],
                    link["delivered_messages"],
                    f"{100 * link['delivered_text_share']:.1f}",
                ]
            )
    headers = [
        "model pace, link",
        "messages",
        "seconds",
        "peak msgs/1 s",
        "delivered msgs*",
        "text delivered %*",
    ]
    return "\n".join(
        [
            f"comm: {report['deltas']:,} deltas to a CommLink and to a one-message-per-frame link at once",
            table(headers, rows),
            f"* simulated: the recorded send times replayed through a copy of Jupyter Server's IOPub "
            f"limiter (_limit_rate: {report['limit']:,.0f} msgs/s over {report['window']:g} s windows)",
        ]
    )
