"""Side by side: llmsock's server and another chat server, measured by the same client process.

The peer is any WebSocket chat server given by its URL and a small adapter (:data:`ADAPTERS`):
the frame that sends it a prompt, and how to read its frames (the text of a delta, the end of the
answer, a failure).  ``llmcore`` is the protocol of llm-core's example servers
(``examples/kitchen-sink/server`` of theGeekist/llm-core: ``chat.send`` in, ``ui.chunk`` frames
holding AI SDK UI chunks out, ``ui.done`` at the end); ``llmsock`` is llmsock's own envelope
dialect, so another llmsock server can be the peer.  Both are asked for the builtin model's
``/long N`` answer; a peer whose model gives other text fails the run.

Two measurements, in rounds that alternate the two servers (the order turns each round):

* **answer**: one ``deltas``-delta answer on a new connection: from sending the prompt to the
  end, deltas delivered per second.  Deltas are counted by the text: llmsock sends the deltas
  that waited together as one frame (docs/protocol.md, section 5.1), so frames are not deltas;
  the client joins the text it received and counts the answer's tokens it holds, whole and in
  order (:func:`deltas_in`).
* **burst**: ``sessions`` connections are opened first; then each sends a prompt for a
  ``burst_deltas``-delta answer at once; the time until the last answer ends.

llmsock's server (the builtin model at full speed) runs on a thread of this process, a fresh one
for each burst, as the other suites start it; the client runs in one process of its own for the
whole run.  Every figure carries the machine's 1-minute load average when it was taken.  Without
a peer, or when the peer does not answer, the suite says so and measures llmsock alone.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import statistics
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

import psutil  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection, connect

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread

from .bare import reply_tokens
from .common import BenchFailure, ClientProcess, child_recv, load_1m, start_server, table
from .latency import OPENING

LLMSOCK = "llmsock"


# -- adapters: how to prompt a server and read its frames ---------------------------------------


@dataclass(frozen=True)
class Read:
    """What one frame says: a piece of the answer's text, the end of the answer, or neither."""

    text: str | None = None
    end: bool = False


@dataclass(frozen=True)
class Adapter:
    """How to talk to one kind of server."""

    name: str
    hello: bool  # the server sends a frame when a connection opens, before any prompt
    prompt: Callable[[str, int], str]  # (prompt text, its number in the run) -> the frame to send
    read: Callable[[bytes], Read]  # one frame -> what it says; raises BenchFailure on a failure


def _llmsock_prompt(text: str, index: int) -> str:
    return text  # the envelope dialect takes plain text as a prompt (docs/protocol.md, section 6.1)


def _llmsock_read(frame: bytes) -> Read:
    message = json.loads(frame)
    name, event = message.get("name"), message.get("data", {}).get("event", {})
    if name == "interaction.model":
        kind = event.get("type")
        if kind == "delta":
            return Read(text=event.get("text"))
        if kind == "end":
            return Read(end=True)
        if kind == "error":
            raise BenchFailure(f"the server sent a model error: {frame[:300]!r}")
    elif name == "interaction.error":
        raise BenchFailure(f"the server sent an error: {frame[:300]!r}")
    return Read()


def _llmcore_prompt(text: str, index: int) -> str:
    # The kitchen-sink server's ClientChatRequest: AI SDK UIMessages, the last user message is the prompt.
    return json.dumps(
        {
            "type": "chat.send",
            "requestId": f"r{index}",
            "chatId": f"c{index}",
            "messages": [{"id": f"u{index}", "role": "user", "parts": [{"type": "text", "text": text}]}],
        }
    )


def _llmcore_read(frame: bytes) -> Read:
    message = json.loads(frame)
    kind = message.get("type")
    if kind == "ui.chunk":
        chunk = message.get("chunk", {})
        if chunk.get("type") == "text-delta":
            return Read(text=chunk.get("delta"))
        if chunk.get("type") == "error":
            raise BenchFailure(f"the peer sent an error chunk: {frame[:300]!r}")
        return Read()
    if kind == "ui.done":
        if message.get("status") not in (None, "ok"):
            raise BenchFailure(f"the peer's run did not end ok: {frame[:300]!r}")
        return Read(end=True)
    if kind == "ui.error":
        raise BenchFailure(f"the peer sent an error: {frame[:300]!r}")
    return Read()


ADAPTERS = {
    LLMSOCK: Adapter(LLMSOCK, hello=True, prompt=_llmsock_prompt, read=_llmsock_read),
    "llmcore": Adapter("llmcore", hello=False, prompt=_llmcore_prompt, read=_llmcore_read),
}


def deltas_in(text: str, tokens: list[str]) -> int:
    """Return how many of ``tokens`` ``text`` holds, whole and in order from the first.

    The count reads only the text, so it is the same whether the deltas came one per frame
    or merged.
    """
    same = _common_prefix(text, "".join(tokens))
    ends = list(itertools.accumulate(len(token) for token in tokens))
    return bisect.bisect_right(ends, same)


def _common_prefix(a: str, b: str) -> int:
    """Return the length of the longest common prefix of ``a`` and ``b``."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # comparing slices by halves: C speed on a whole answer
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


# -- the client process -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server to measure: where it is and how to talk to it."""

    name: str
    url: str
    adapter: str
    headers: dict[str, str]


def _open(target: Target, timeout: float) -> connect:
    """Return a connection to ``target`` to await (no compression: neither server is asked for it)."""
    return connect(
        target.url,
        additional_headers=target.headers,
        compression=None,
        max_size=None,
        open_timeout=timeout,
        close_timeout=timeout,
    )


async def _answer(ws: ClientConnection, adapter: Adapter, prompt: str, index: int) -> tuple[str, int]:
    """Send ``prompt``; return the answer's text and the frames received, at the end of the answer."""
    await ws.send(adapter.prompt(prompt, index))
    pieces: list[str] = []
    frames = 0
    while True:
        frames += 1
        read = adapter.read(await ws.recv(decode=False))
        if read.text:
            pieces.append(read.text)
        elif read.end:
            return "".join(pieces), frames


async def _connected(target: Target, timeout: float) -> ClientConnection:
    """Connect to ``target`` and wait for its hello, if it says one."""
    ws = await _open(target, timeout)
    if ADAPTERS[target.adapter].hello:
        await asyncio.wait_for(ws.recv(decode=False), timeout)  # the hello is not part of the turn
    return ws


async def _one_answer(conn: Connection, target: Target, prompt: str, timeout: float) -> dict[str, Any]:
    """Time one answer on a new connection."""
    ws = await _connected(target, timeout)
    try:
        conn.send(("ready",))
        await child_recv(conn)
        cpu, start = time.process_time(), time.perf_counter()
        text, frames = await asyncio.wait_for(_answer(ws, ADAPTERS[target.adapter], prompt, 1), timeout)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        conn.send(("done",))  # before closing: the server's CPU time is read now
        return {"seconds": seconds, "client_cpu": cpu, "frames": frames, "texts": [text]}
    finally:
        await ws.close()


async def _burst(
    conn: Connection, target: Target, prompt: str, sessions: int, timeout: float
) -> dict[str, Any]:
    """Open ``sessions`` connections, then time their prompts, all sent at once, to the last end."""
    gate = asyncio.Semaphore(OPENING)

    async def open_one() -> ClientConnection:
        async with gate:
            return await _connected(target, timeout)

    sockets = await asyncio.gather(*(open_one() for _ in range(sessions)))
    try:
        conn.send(("ready",))
        await child_recv(conn)
        adapter = ADAPTERS[target.adapter]
        cpu, start = time.process_time(), time.perf_counter()
        answers = await asyncio.wait_for(
            asyncio.gather(*(_answer(ws, adapter, prompt, i) for i, ws in enumerate(sockets, 1))), timeout
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        conn.send(("done",))  # before closing: the server's CPU time is read now, not the closes
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    frames = sum(f for _, f in answers)
    return {"seconds": seconds, "client_cpu": cpu, "frames": frames, "texts": [t for t, _ in answers]}


async def client_main(conn: Connection, timeout: float) -> int:
    """The client process: run each ``(kind, target, prompt, sessions)`` the parent sends; ``None`` ends it.

    For each it connects (every session), says ``ready``, waits for ``go`` (the parent reads
    the server's CPU time in between), runs the answer or the burst, says ``done`` (the parent
    reads the CPU time again), closes its connections and sends back the time, the frames and
    the texts received.
    """
    runs = 0
    while (request := await child_recv(conn)) is not None:
        kind, target, prompt, sessions = request
        if kind == "answer":
            result = await _one_answer(conn, target, prompt, timeout)
        else:
            result = await _burst(conn, target, prompt, sessions, timeout)
        conn.send(("run", result))
        runs += 1
    return runs


# -- the parent: servers, rounds, figures -------------------------------------------------------


@dataclass
class Peer:
    """The other server, as given on the command line."""

    url: str
    adapter: str = "llmcore"
    pid: int | None = None  # its process, to read its CPU time (optional)
    token: str | None = None  # sent as ``Authorization: Bearer`` (another llmsock server needs one)

    def target(self) -> Target:
        """Return the peer as a target."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return Target("peer", self.url, self.adapter, headers)


def reachable(peer: Peer, timeout: float) -> str | None:
    """Return None if ``peer`` answers a prompt for one delta, else why not."""
    target = peer.target()

    async def probe() -> None:
        async with _open(target, timeout) as ws:
            if ADAPTERS[peer.adapter].hello:
                await asyncio.wait_for(ws.recv(decode=False), timeout)
            await asyncio.wait_for(_answer(ws, ADAPTERS[peer.adapter], "/long 1", 1), timeout)

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure (refused, bad handshake, odd frames) means: not this peer
        return f"{type(exc).__name__}: {exc}"
    return None


async def _thread_time() -> float:
    return time.thread_time()


class _Cpu:
    """CPU seconds of a server: llmsock's loop thread, or the peer's process if its pid is known."""

    def __init__(self, server: ServerThread | None = None, pid: int | None = None) -> None:
        self.server, self.pid = server, pid

    def read(self) -> float | None:
        """Return the CPU seconds so far, or None if they cannot be read."""
        if self.server is not None:  # read on the loop's own thread: finer than the OS's ticks
            return float(self.server.submit(_thread_time()).result(10))
        if self.pid is None:
            return None
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return None
        return float(times.user + times.system)


def _measure(
    client: ClientProcess,
    kind: str,
    target: Target,
    cpu: _Cpu,
    tokens: list[str],
    sessions: int,
    timeout: float,
) -> dict[str, Any]:
    """Run one answer or burst on ``target``; check every answer's text; return its figures."""
    prompt = f"/long {len(tokens)}"
    wait = timeout + sessions * 0.05
    client.send((kind, target, prompt, sessions))
    client.recv(wait)  # ready: connected
    before = cpu.read()
    client.send("go")
    client.recv(wait)  # done: every answer has ended
    after = cpu.read()
    _, result = client.recv(wait)
    counted = [deltas_in(text, tokens) for text in result["texts"]]
    expected = len(tokens) * len(counted)
    if sum(counted) != expected:
        short = sum(1 for c in counted if c != len(tokens))
        raise BenchFailure(
            f"{target.name}: {short} of {len(counted)} answer(s) were not the expected text "
            f"({sum(counted)} of {expected} deltas counted by the text)"
        )
    seconds = result["seconds"]
    server_cpu = None if before is None or after is None else after - before
    return {
        "target": target.name,
        "sessions": len(counted),
        "deltas": len(tokens),
        "seconds": seconds,
        "deltas_per_second": expected / seconds,
        "frames": result["frames"],
        "server_cpu_us_per_delta": None if server_cpu is None else server_cpu / expected * 1e6,
        "client_cpu_us_per_delta": result["client_cpu"] / expected * 1e6,
        "load": load_1m(),
    }


def _llmsock_target(server: ServerThread) -> Target:
    """Return ``server`` as a target, with its token."""
    return Target(LLMSOCK, server.url, LLMSOCK, {"Authorization": f"Bearer {server.token}"})


def run(
    *,
    peer: Peer | None,
    deltas: int,
    sessions: int,
    burst_deltas: int,
    rounds: int,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Measure llmsock (and the peer, if it answers) in ``rounds`` interleaved rounds; return the report."""
    why_alone = "no peer given" if peer is None else reachable(peer, timeout)
    peer_target = None if peer is None or why_alone else peer.target()
    answer_tokens = asyncio.run(reply_tokens(f"/long {deltas}"))
    burst_tokens = asyncio.run(reply_tokens(f"/long {burst_deltas}"))
    answers: list[dict[str, Any]] = []
    bursts: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        full = start_server(model=BuiltinModel(tokens_per_second=None), start_timeout=timeout)
        stack.callback(full.stop, timeout)
        client = ClientProcess(client_main, timeout + deltas / 1000 + sessions * 0.05)
        stack.callback(client.close)
        stack.callback(client.send, None)
        targets = [_llmsock_target(full)] + ([peer_target] if peer_target else [])
        cpus = {LLMSOCK: _Cpu(full), "peer": _Cpu(pid=peer.pid if peer else None)}
        for target in targets:  # warm up: imports, first connections, the peer's JIT
            _measure(client, "answer", target, cpus[target.name], answer_tokens, 1, timeout)
        for index in range(rounds):
            shift = index % len(targets)  # the order turns, so neither always runs first
            order = targets[shift:] + targets[:shift]
            for target in order:
                row = _measure(client, "answer", target, cpus[target.name], answer_tokens, 1, timeout)
                answers.append({"round": index + 1, **row})
            for target in order:
                row = _burst_round(client, target, cpus["peer"], burst_tokens, sessions, timeout)
                bursts.append({"round": index + 1, **row})
    return {
        "peer": None if peer is None else {"url": peer.url, "adapter": peer.adapter},
        "alone": why_alone,
        "deltas": deltas,
        "sessions": sessions,
        "burst_deltas": burst_deltas,
        "rounds": rounds,
        "answers": answers,
        "bursts": bursts,
        "ratios": ratios(answers, bursts),
    }


def _burst_round(
    client: ClientProcess, target: Target, peer_cpu: _Cpu, tokens: list[str], sessions: int, timeout: float
) -> dict[str, Any]:
    """Run one burst; llmsock gets a fresh server for it, as a kernel starting anew would."""
    if target.name != LLMSOCK:
        return _measure(client, "burst", target, peer_cpu, tokens, sessions, timeout)
    server = start_server(
        model=BuiltinModel(tokens_per_second=None), connections=sessions, start_timeout=timeout
    )
    try:
        return _measure(client, "burst", _llmsock_target(server), _Cpu(server), tokens, sessions, timeout)
    finally:
        server.stop(timeout)


def ratios(answers: list[dict[str, Any]], bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """Return, per round and their median, llmsock over the peer: deltas/s of the answer, speed of the burst.

    The burst ratio is the peer's seconds over llmsock's (above 1: llmsock finished first).
    Empty when there is no peer.
    """

    def by_round(rows: list[dict[str, Any]], key: str, flip: bool) -> list[float]:
        out = []
        for _, group in itertools.groupby(rows, key=lambda r: r["round"]):
            values = {r["target"]: r[key] for r in group}
            if LLMSOCK in values and "peer" in values:
                mine, theirs = values[LLMSOCK], values["peer"]
                out.append(theirs / mine if flip else mine / theirs)
        return out

    answer = by_round(answers, "deltas_per_second", flip=False)
    burst = by_round(bursts, "seconds", flip=True)
    if not answer and not burst:
        return {}
    return {
        "answer_deltas_per_second": answer,
        "answer_median": statistics.median(answer) if answer else None,
        "burst_speed": burst,
        "burst_median": statistics.median(burst) if burst else None,
    }


# -- the report ---------------------------------------------------------------------------------


def _rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Return the table rows: llmsock's rounds first, then the peer's."""
    return [
        [
            r["target"],
            r["round"],
            r["sessions"],
            r["deltas"],
            f"{r['seconds']:.3f}",
            r["deltas_per_second"],
            r["frames"],
            r["server_cpu_us_per_delta"],
            r["client_cpu_us_per_delta"],
            f"{r['load']:.2f}",
        ]
        for r in sorted(rows, key=lambda r: (r["target"] != LLMSOCK, r["round"]))
    ]


def _spread(rows: list[dict[str, Any]], name: str, key: str) -> str:
    """Return one server's median, min and max of ``key`` over the rounds ("" if it has none)."""
    values = sorted(r[key] for r in rows if r["target"] == name)
    if not values:
        return ""
    unit = "deltas/s" if key == "deltas_per_second" else "s"
    fmt = "{:,.0f}" if key == "deltas_per_second" else "{:.3f}"
    return (
        f"{name}: median {fmt.format(statistics.median(values))} {unit} "
        f"(min {fmt.format(values[0])}, max {fmt.format(values[-1])})"
    )


def render(report: dict[str, Any]) -> str:
    """Return the report as two tables (the answer, the burst) with the spread and the ratios."""
    headers = [
        "target",
        "round",
        "sessions",
        "deltas",
        "seconds",
        "deltas/s",
        "frames",
        "srv µs/d",
        "cli µs/d",
        "load 1m",
    ]
    peer = report["peer"]
    if report["alone"]:
        where = f" at {peer['url']}" if peer else ""
        intro = f"llmsock alone; the peer was not measured ({report['alone']}{where})"
    else:
        intro = f"llmsock and the peer at {peer['url']} ({peer['adapter']} protocol)"
    lines = [
        f"peer: {intro}; {report['rounds']} round(s), the servers alternating",
        f"answer: one {report['deltas']:,}-delta answer on a new connection, deltas counted by the text",
        table(headers, _rows(report["answers"])),
        *(s for s in (_spread(report["answers"], n, "deltas_per_second") for n in (LLMSOCK, "peer")) if s),
        "",
        f"burst: {report['sessions']:,} sessions each send a prompt for {report['burst_deltas']:,} deltas "
        "at once; seconds until every answer has ended",
        table(headers, _rows(report["bursts"])),
        *(s for s in (_spread(report["bursts"], n, "seconds") for n in (LLMSOCK, "peer")) if s),
    ]
    r = report["ratios"]
    if r:
        each = ", ".join(f"{x:.2f}" for x in r["answer_deltas_per_second"])
        lines.append(
            f"llmsock / peer, answer deltas/s: median {r['answer_median']:.2f} (rounds: {each}); goal >= 3"
        )
        each = ", ".join(f"{x:.2f}" for x in r["burst_speed"])
        lines.append(
            f"peer seconds / llmsock seconds, burst: median {r['burst_median']:.2f} (rounds: {each}); "
            "goal > 1 (llmsock finishes first)"
        )
    lines.append(
        "srv µs/d: the server's CPU per delta (llmsock's loop thread; the peer's whole process, given its "
        "pid, in the OS's 10 ms ticks); cli µs/d: the client process's CPU per delta; "
        "load 1m: the 1-minute load average when the figure was taken"
    )
    return "\n".join(lines)
