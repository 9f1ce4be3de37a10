"""The OpenAI path: llmsock's whole path against the ``openai`` SDKs merely reading the same provider.

One local provider (a process of its own, an asyncio HTTP server on 127.0.0.1 port 0) answers
every ``POST /v1/chat/completions`` with ``max_tokens`` N as fast as it can: N text chunks
(``tok<i> ``) in the OpenAI wire format, one HTTP chunk per server-sent event as real servers
send them, then the finish chunk, a usage chunk and ``data: [DONE]``, all written at once.
Each reader runs in a process of its own and streams from it in turn (the order rotates
between repeats):

* **node openai SDK**: ``benchmarks/openai-node/read.mjs``, the ``openai`` package from npm
  iterating the stream (``npm ci`` runs there first if ``node_modules`` is missing; without
  node and npm the row is skipped, saying why);
* **python openai SDK**: ``openai.AsyncOpenAI`` iterating the stream;
* **llmsock model alone**: :meth:`~llmsock_widget.models.openai_compat.OpenAICompatModel.stream`
  iterated, no server: the adapter's own cost;
* **llmsock (Client)**: the whole path, provider -> ``OpenAICompatModel`` -> hub -> WebSocket ->
  the project's :class:`~llmsock_widget.client.Client`, one prompt on a new session;
* **llmsock (bare reader)**: the same server read by a WebSocket client that parses only the
  deltas' JSON, so the server sets the pace.

The server may merge deltas that wait together into one frame (docs/protocol.md section 5.1),
so the llmsock readers count chunks in the text they receive.  Each row gives chunks/s (N
over the time from the request, or the prompt, to the stream's end), the time to the first
text chunk, the reader's CPU per chunk, and for the whole path the longest stall of the
server's event loop: a ticker on that loop wakes every millisecond while the answer streams
and records the longest gap between two wake-ups (1 ms if the loop never stalls).  Figures
are medians of ``repeat`` runs after one warm-up run per reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, Protocol

from llmsock_widget.models.openai_compat import OpenAICompatModel
from llmsock_widget.server.thread import ServerThread

from .common import BenchFailure, ClientProcess, child_recv, start_server, table

NODE_DIR = Path(__file__).resolve().parent / "openai-node"
NODE_ROW = "node openai SDK"
SDK_ROW = "python openai SDK"
MODEL_ROW = "llmsock model alone"  # OpenAICompatModel.stream iterated, no server
CLIENT_ROW = "llmsock (Client)"  # the whole path, read by the project's Python client
BARE_ROW = "llmsock (bare reader)"  # the whole path, read by a client that parses nothing
TICK = 0.001  # seconds between the loop ticker's wake-ups


# -- the provider -------------------------------------------------------------------------------


def _sse_body(chunks: int) -> bytes:
    """Return the HTTP body (chunked transfer encoding) of a stream of ``chunks`` text chunks."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench"}

    def event(choices: list[Any], **extra: Any) -> bytes:
        data = b"data: " + json.dumps({**head, "choices": choices, **extra}).encode() + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    parts = [event(choice({"role": "assistant", "content": ""}))]
    parts += [event(choice({"content": f"tok{i} "})) for i in range(chunks)]
    parts.append(event(choice({}, "stop")))
    usage = {"prompt_tokens": 1, "completion_tokens": chunks, "total_tokens": chunks + 1}
    parts.append(event([], usage=usage))
    done = b"data: [DONE]\n\n"
    parts.append(b"%x\r\n%s\r\n" % (len(done), done))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


_HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bodies: dict[int, bytes]
) -> None:
    """Answer every request of one keep-alive connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            request = json.loads(await reader.readexactly(length)) if length else {}
            chunks = int(request.get("max_tokens") or request.get("max_completion_tokens") or 100)
            if chunks not in bodies:
                bodies[chunks] = _sse_body(chunks)
            writer.write(_HEADERS + bodies[chunks])
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def provider_main(conn: Connection) -> int:
    """The provider process: serve on 127.0.0.1 port 0, send ``("port", port)``, stop on ``None``."""
    bodies: dict[int, bytes] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # cancelled when the provider stops
            await _answer(reader, writer, bodies)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    conn.send(("port", server.sockets[0].getsockname()[1]))
    async with server:
        await child_recv(conn)
    return len(bodies)


# -- the readers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured stream."""

    chunks: int
    first_ms: float  # request (or prompt) to the first text chunk (delta)
    seconds: float  # request (or prompt) to the stream's end
    client_us: float | None = None  # the reader's CPU (its main thread) per chunk, when known
    stall_ms: float | None = None  # the longest gap of the llmsock server's loop while it streamed


class Reader(Protocol):
    name: str

    def measure(self, chunks: int) -> Run: ...

    def close(self) -> None: ...


async def sdk_main(conn: Connection, base_url: str, timeout: float) -> int:
    """The Python SDK's process: for each N from the parent, read one stream; ``None`` ends it."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=timeout)
    runs = 0
    while (chunks := await child_recv(conn)) is not None:
        cpu = time.thread_time()
        start = time.perf_counter()
        first = None
        count = 0
        stream = await client.chat.completions.create(
            model="bench",
            messages=[{"role": "user", "content": "go"}],
            max_tokens=chunks,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        conn.send(("run", count, ((first or end) - start) * 1000, end - start, time.thread_time() - cpu))
        runs += 1
    await client.close()
    return runs


async def model_main(conn: Connection, base_url: str, timeout: float) -> int:
    """The model's process: for each N, iterate :meth:`OpenAICompatModel.stream` alone; ``None`` ends it."""
    from llmsock_widget.models.base import ModelRequest, TextChunk

    model = OpenAICompatModel(model="bench", base_url=base_url, api_key="not-needed", timeout=timeout)
    runs = 0
    while (chunks := await child_recv(conn)) is not None:
        request = ModelRequest(messages=({"role": "user", "content": "go"},), options={"maxTokens": chunks})
        cpu = time.thread_time()
        start = time.perf_counter()
        first = None
        count = 0
        async for chunk in model.stream(request):
            if isinstance(chunk, TextChunk):
                count += chunk.text.count("tok")  # chunks that arrived together come as one
                first = first or time.perf_counter()
        end = time.perf_counter()
        conn.send(("run", count, ((first or end) - start) * 1000, end - start, time.thread_time() - cpu))
        runs += 1
    await model.aclose()
    return runs


async def client_main(conn: Connection, url: str, token: str, timeout: float) -> int:
    """The project's client's process: for each N, one prompt on a new session; ``None`` ends it.

    It connects, says ``ready``, waits for ``go`` (the parent starts the loop ticker in
    between), sends the prompt and counts the deltas until the model's ``end``.
    """
    from llmsock_widget.client import Client

    runs = 0
    while await child_recv(conn) is not None:  # the model's max_tokens sets the length
        async with Client(url, token=token, heartbeat=0, request_timeout=timeout) as client:
            events = client.events()
            conn.send(("ready",))
            await child_recv(conn)
            cpu = time.thread_time()
            start = time.perf_counter()
            await client.send_prompt("go")
            count, first = await asyncio.wait_for(_deltas(events), timeout)
            end = time.perf_counter()
            cpu = time.thread_time() - cpu
        conn.send(("run", count, ((first or end) - start) * 1000, end - start, cpu))
        runs += 1
    return runs


async def _deltas(events: Any) -> tuple[int, float | None]:
    """Read the model's deltas until its ``end``; return the chunks their text holds, and when the first came.

    The server may merge deltas that wait together (docs/protocol.md section 5.1), so chunks are
    counted in the text (each is ``tok<i> ``), not as frames.
    """
    pieces: list[str] = []
    first = None
    async for message in events:
        if message.get("name") == "error":
            raise BenchFailure(f"the server sent an error: {json.dumps(message)[:300]}")
        if message.get("name") != "interaction.model":
            continue
        event = message["data"]["event"]
        if event["type"] == "delta":
            pieces.append(event["text"])
            first = first or time.perf_counter()
        elif event["type"] == "error":
            raise BenchFailure(f"the model failed: {event.get('message')!r:.300}")
        elif event["type"] == "end":
            return "".join(pieces).count("tok"), first
    raise BenchFailure("the event stream ended before the model's end")


async def raw_main(conn: Connection, url: str, token: str, timeout: float) -> int:
    """A bare WebSocket reader's process: as :func:`client_main`, with no client library.

    It looks at each frame's bytes and parses only the deltas' JSON, so the server sets the pace.
    """
    from websockets.asyncio.client import connect

    runs = 0
    headers = {"Authorization": f"Bearer {token}"}
    while await child_recv(conn) is not None:
        async with connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
            await asyncio.wait_for(ws.recv(decode=False), timeout)  # the hello
            conn.send(("ready",))
            await child_recv(conn)
            cpu = time.thread_time()
            start = time.perf_counter()
            await ws.send("go")
            count, first = await asyncio.wait_for(_delta_frames(ws), timeout)
            end = time.perf_counter()
            cpu = time.thread_time() - cpu
        conn.send(("run", count, ((first or end) - start) * 1000, end - start, cpu))
        runs += 1
    return runs


async def _delta_frames(ws: Any) -> tuple[int, float | None]:
    chunks = 0
    first = None
    while True:
        frame = await ws.recv(decode=False)
        if b'"type":"delta"' in frame:
            chunks += json.loads(frame)["data"]["event"]["text"].count("tok")
            first = first or time.perf_counter()
        elif b'"type":"end"' in frame:
            return chunks, first
        elif b'"type":"error"' in frame or b'"name":"error"' in frame:
            raise BenchFailure(f"the server sent an error: {frame[:300]!r}")


class SdkReader:
    """The Python ``openai`` SDK, or llmsock's model alone, in a process of its own."""

    def __init__(self, base_url: str, timeout: float, *, model: bool = False) -> None:
        self.name = MODEL_ROW if model else SDK_ROW
        self.timeout = timeout
        self.process = ClientProcess(model_main if model else sdk_main, base_url, timeout)

    def measure(self, chunks: int) -> Run:
        self.process.send(chunks)
        _, count, first_ms, seconds, cpu = self.process.recv(self.timeout + chunks / 500)
        return Run(count, first_ms, seconds, client_us=cpu / max(count, 1) * 1e6)

    def close(self) -> None:
        self.process.send(None)
        self.process.close()


class LlmsockReader:
    """llmsock's whole path: the server's OpenAI-compatible model, a client in its own process."""

    def __init__(self, server: ServerThread, raw: bool, timeout: float) -> None:
        self.name = BARE_ROW if raw else CLIENT_ROW
        self.timeout = timeout
        self.server = server
        main = raw_main if raw else client_main
        self.process = ClientProcess(main, server.url, server.token, timeout)

    def measure(self, chunks: int) -> Run:
        self.process.send(chunks)
        self.process.recv(self.timeout)  # ready
        ticker = _Ticker()
        ticking = self.server.submit(ticker.run())
        try:
            self.process.send("go")
            _, count, first_ms, seconds, cpu = self.process.recv(self.timeout + chunks / 500)
        finally:
            ticker.stopped = True
        stall = ticking.result(self.timeout) * 1000
        return Run(count, first_ms, seconds, client_us=cpu / max(count, 1) * 1e6, stall_ms=stall)

    def close(self) -> None:
        self.process.send(None)
        self.process.close()


class _Ticker:
    """Wake every :data:`TICK` seconds on a loop; remember the longest gap between two wake-ups."""

    def __init__(self) -> None:
        self.stopped = False  # set from another thread: a plain flag, read once a tick

    async def run(self) -> float:
        longest = 0.0
        last = time.perf_counter()
        while not self.stopped:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now
        return longest


class NodeReader:
    """The Node ``openai`` SDK (benchmarks/openai-node/read.mjs) in a process of its own."""

    name = NODE_ROW

    def __init__(self, base_url: str, timeout: float) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            ["node", str(NODE_DIR / "read.mjs"), base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=NODE_DIR,
        )

    def measure(self, chunks: int) -> Run:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(f"{chunks}\n")
        stdin.flush()
        line = _read_line(stdout, self.timeout + chunks / 500)
        if not line:
            raise BenchFailure(f"the node reader ended (exit status {self.process.poll()})")
        result = json.loads(line)
        return Run(int(result["chunks"]), float(result["first_ms"]), float(result["seconds"]))

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.write("\n")
                self.process.stdin.close()
        try:
            self.process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read_line(stream: IO[str], timeout: float) -> str:
    """Read one line from a child's stdout, or fail after ``timeout`` seconds."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise BenchFailure(f"the node reader said nothing for {timeout:g} s")
    return stream.readline()


def node_ready(timeout: float) -> str | None:
    """Install the Node reader's packages if needed; return why it cannot run, or None."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return f"no {'node' if node is None else 'npm'} on PATH"
    if (NODE_DIR / "node_modules" / "openai").is_dir():
        return None
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=max(timeout, 120),
        check=False,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    if done.returncode != 0:
        return f"npm ci failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


# -- running and reporting ----------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The medians of one reader's runs."""

    name: str
    chunks: int
    chunks_per_second: float
    first_ms: float
    client_us: float | None
    stall_ms: float | None
    seconds: list[float]
    first_ms_runs: list[float]
    stall_ms_runs: list[float] | None


def summarize(name: str, runs: list[Run]) -> Summary:
    """Return the medians of ``runs``."""
    stalls = [r.stall_ms for r in runs if r.stall_ms is not None]
    cpu = [r.client_us for r in runs if r.client_us is not None]
    seconds = statistics.median(r.seconds for r in runs)
    return Summary(
        name=name,
        chunks=runs[0].chunks,
        chunks_per_second=runs[0].chunks / seconds,
        first_ms=statistics.median(r.first_ms for r in runs),
        client_us=statistics.median(cpu) if cpu else None,
        stall_ms=statistics.median(stalls) if stalls else None,
        seconds=[round(r.seconds, 6) for r in runs],
        first_ms_runs=[round(r.first_ms, 3) for r in runs],
        stall_ms_runs=[round(s, 3) for s in stalls] if stalls else None,
    )


def run(*, chunks: int, repeat: int, timeout: float = 60.0, node: bool = True) -> dict[str, Any]:
    """Start the provider and the readers, warm up, measure ``repeat`` interleaved rounds."""
    skipped: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        provider = ClientProcess(provider_main)
        stack.callback(provider.close)
        stack.callback(provider.send, None)
        _, port = provider.recv(timeout)
        base_url = f"http://127.0.0.1:{port}/v1"
        readers: list[Reader] = []
        why = node_ready(timeout) if node else "left out (node=False)"
        if why is None:
            readers.append(NodeReader(base_url, timeout))
        else:
            skipped[NodeReader.name] = why
        model = OpenAICompatModel(model="bench", base_url=base_url, api_key="not-needed", max_tokens=chunks)
        server = start_server(model=model, start_timeout=timeout)
        stack.callback(server.stop, timeout)
        readers += [
            SdkReader(base_url, timeout),
            SdkReader(base_url, timeout, model=True),
            LlmsockReader(server, raw=False, timeout=timeout),
            LlmsockReader(server, raw=True, timeout=timeout),
        ]
        for reader in readers:
            stack.callback(reader.close)
        runs: dict[str, list[Run]] = {r.name: [] for r in readers}
        for reader in readers:  # warm up: imports, JIT, first connections
            _checked(reader, reader.measure(chunks), chunks)
        for index in range(repeat):
            shift = index % len(readers)  # rotate: no reader always runs right after the same one
            for reader in readers[shift:] + readers[:shift]:
                runs[reader.name].append(_checked(reader, reader.measure(chunks), chunks))
    summaries = {name: summarize(name, measured) for name, measured in runs.items()}
    report: dict[str, Any] = {
        "chunks": chunks,
        "repeat": repeat,
        "results": {name: asdict(s) for name, s in summaries.items()},
        "skipped": skipped,
    }
    node_row = summaries.get(NODE_ROW)
    report["over_node"] = {
        name: summaries[name].chunks_per_second / node_row.chunks_per_second if node_row else None
        for name in (MODEL_ROW, CLIENT_ROW, BARE_ROW)
    }
    return report


def _checked(reader: Reader, measured: Run, chunks: int) -> Run:
    if measured.chunks != chunks:
        raise BenchFailure(f"{reader.name}: read {measured.chunks} chunks, expected {chunks}")
    return measured


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = [
        [
            s["name"],
            s["chunks"],
            s["chunks_per_second"],
            s["first_ms"],
            s["client_us"],
            s["stall_ms"],
            f"{min(s['seconds']):.3f}-{max(s['seconds']):.3f}",
        ]
        for s in report["results"].values()
    ]
    rows += [
        [name, f"skipped: {why}", None, None, None, None, None] for name, why in report["skipped"].items()
    ]
    headers = ["reader", "chunks", "chunks/s", "first ms", "cli µs/c", "stall ms", "min-max s"]
    lines = [
        f"openai: one local provider, {report['chunks']:,} chunks per stream; median of "
        f"{report['repeat']} interleaved run(s) after 1 warm-up; each reader in its own process",
        table(headers, rows),
        "cli µs/c: the reader's CPU per chunk; stall ms: the longest gap of the llmsock server's loop "
        "while it streamed (it ticks every 1 ms)",
    ]
    ratios = [f"{name} {ratio:.2f}" for name, ratio in report["over_node"].items() if ratio is not None]
    if ratios:
        lines.append(f"chunks/s over the node openai SDK's: {', '.join(ratios)}")
    return "\n".join(lines)
