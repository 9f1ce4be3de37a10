"""Check llmsock against a real llama-server serving Gemma 3 270M (run by scripts/real-model-check.sh).

Each check prints one line, ``PASS`` or ``FAIL``, with its figures and the time it took; the exit
status is the number of failed checks (capped at 100), so 0 means all passed.  llama-server is
started twice on free loopback ports: with ``--jinja`` (Gemma's own chat template, which refuses
two user messages in a row, and tools) and with ``--no-jinja`` (a server that refuses tools).
llmsock reaches it through its OpenAI-compatible model, ``openai:<model>`` with a ``base_url``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from llmsock_widget import Client, ServerThread
from llmsock_widget.tools import ToolRegistry

MODEL = "gemma-3-270m"
CANCEL_LOG = "cancel task"  # llama.cpp tools/server/server-queue.cpp: SRV_WRN("cancel task, id_task = %d")
STREAM_PROMPT = "Name the seven colours of the rainbow, one per line."
LONG_PROMPT = "Write a very long story about a cat who learns to sail across the ocean."
TOOL_PROMPTS = (
    "What is the weather in Paris right now? Use the get_weather tool.",
    "Call get_weather with city Paris and tell me the result.",
)


@dataclass
class Report:
    """The checks' outcomes, printed as they come."""

    failed: list[str] = field(default_factory=list)
    passed: int = 0

    def line(self, name: str, ok: bool, started: float, figures: str) -> None:
        """Print one check's line and count it."""
        took = time.monotonic() - started
        print(f"{'PASS' if ok else 'FAIL'}  {name:<44} {took:6.1f} s  {figures}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)

    def note(self, name: str, started: float, figures: str) -> None:
        """Print what was seen where the model, not llmsock, decides the outcome; not counted."""
        took = time.monotonic() - started
        print(f"NOTE  {name:<44} {took:6.1f} s  {figures}", flush=True)


@dataclass
class LlamaServer:
    """A running llama-server: its base URL and its log file."""

    base_url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_size(self) -> int:
        """Return how many bytes the log holds now (to read only what comes after)."""
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        """Return what the server logged after ``offset``."""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(args: argparse.Namespace, log_dir: Path, *, jinja: bool) -> Iterator[LlamaServer]:
    """Start llama-server on a free loopback port, wait for /health, and stop it afterwards.

    The GGUF (the base Gemma 3 270M) carries no chat template, on which llama-server would fall
    back to ChatML: with ``--jinja`` it gets Gemma's Jinja template from the llama.cpp source
    (strict user/model alternation), without it llama.cpp's built-in ``gemma`` template.
    """
    port = free_port()
    log = log_dir / f"llama-server-{'jinja' if jinja else 'no-jinja'}.log"
    argv = [args.server, "-m", args.gguf, "--host", "127.0.0.1", "--port", str(port), "-c", "4096"]
    # One slot and a fixed seed: the same request gets the same answer (temperature 0 is greedy).
    argv += ["-np", "1", "--seed", "42", "-t", str(args.threads)]
    if jinja:
        argv += ["--jinja", "--chat-template-file", args.chat_template]
    else:
        argv += ["--no-jinja", "--chat-template", "gemma"]
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", log, process)
    try:
        wait_healthy(server, port)
        print(
            f"----  llama-server {'--jinja' if jinja else '--no-jinja'} on port {port}, "
            f"healthy after {time.monotonic() - started:.1f} s (log: {log})",
            flush=True,
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(server: LlamaServer, port: int, timeout: float = 120.0) -> None:
    """Poll /health until the model is loaded; raise with the log's tail if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = server.log.read_text("utf-8", "replace")[-2000:]
    raise RuntimeError(f"llama-server did not become healthy on port {port}:\n{tail}")


async def direct_stream(base_url: str, body: dict[str, Any]) -> tuple[list[str], float]:
    """Stream ``body`` straight from llama-server; return its content pieces and first-piece time."""
    pieces: list[str] = []
    first = 0.0
    started = time.monotonic()
    payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient(timeout=120) as http:
        async with http.stream("POST", f"{base_url}/chat/completions", json=payload) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        first = first or time.monotonic() - started
                        pieces.append(text)
    return pieces, first


@dataclass
class Turn:
    """What llmsock's client saw of one turn."""

    deltas: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    first: float = 0.0

    @property
    def reason(self) -> str:
        """How the turn ended: stop, length, aborted or error."""
        if self.end.get("type") == "error":
            return "error"
        return str(self.end.get("finishReason", "?"))

    @property
    def error(self) -> str:
        """The error text the user saw, if any."""
        if self.end.get("type") != "error":
            return ""
        return f"{self.end.get('code')}: {self.end.get('message')}"

    @property
    def text(self) -> str:
        """The answer's text, as streamed."""
        return "".join(self.deltas)

    @property
    def answered(self) -> bool:
        """Whether the turn ended normally with some text."""
        return self.reason in ("stop", "length") and bool(self.text.strip())

    @property
    def error_line(self) -> str:
        """The error the user saw as a line of a report's figures ("" if none)."""
        return f"\n      error: {self.error}" if self.error else ""


async def run_turn(
    client: Client, text: str, *, on_delta: Callable[[Turn], Any] | None = None, **options: Any
) -> Turn:
    """Send a prompt and follow its turn to the end; ``on_delta`` may act (abort) as text arrives."""
    events = client.events()
    message_id = await client.send_prompt(text, **options)
    return await follow(events, message_id, on_delta=on_delta)


@asynccontextmanager
async def llmsock(
    base_url: str, *, tools: ToolRegistry | None = None, **model: Any
) -> AsyncIterator[tuple[Client, ServerThread]]:
    """Start an llmsock server whose model is llama-server; yield a client of a new session, and it."""
    options = {"base_url": base_url, "api_key": "not-needed", "temperature": 0.0, **model}
    server = ServerThread(
        model=f"openai:{MODEL}", model_options=options, tools=tools if tools is not None else ToolRegistry()
    ).start()
    try:
        async with Client(server.url, token=server.token) as client:
            yield client, server
    finally:
        server.stop()


def shown(text: str, limit: int = 70) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters, quoted."""
    flat = " ".join(text.split())
    return json.dumps(flat if len(flat) <= limit else flat[: limit - 1] + "…", ensure_ascii=False)


async def check_template(report: Report, server: LlamaServer) -> None:
    """llama-server renders Gemma's turns and refuses two user messages in a row, as Gemma does."""
    started = time.monotonic()
    user = {"role": "user", "content": "Hi"}
    root = server.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=30) as http:
        one = await http.post(f"{root}/apply-template", json={"messages": [user]})
        two = await http.post(f"{root}/apply-template", json={"messages": [user, user]})
    prompt = str(one.json().get("prompt", "")) if one.status_code == 200 else one.text
    said = "Conversation roles must alternate"
    refused = said if said in two.text else two.text
    ok = "<start_of_turn>user" in prompt and two.status_code >= 400 and refused == said
    figures = f"one user message -> {shown(prompt, 60)}; "
    figures += f"two in a row -> HTTP {two.status_code} {shown(refused, 90)}"
    report.line("Gemma's template, strict alternation", ok, started, figures)


async def check_streaming(report: Report, server: LlamaServer) -> None:
    """llmsock's text equals llama-server's own answer to the same request, one delta per piece."""
    started = time.monotonic()
    max_tokens = 80
    body = {"model": MODEL, "messages": [{"role": "user", "content": STREAM_PROMPT}], "temperature": 0.0}
    pieces, direct_first = await direct_stream(server.base_url, {**body, "max_tokens": max_tokens})
    async with llmsock(server.base_url) as (client, _):
        turn = await run_turn(client, STREAM_PROMPT, maxTokens=max_tokens)
    direct, ours = "".join(pieces), turn.text
    end_text = str(turn.end.get("text", ours))
    ok = bool(direct) and ours == direct and end_text == direct and turn.reason in ("stop", "length")
    figures = (
        f"{len(turn.deltas)} deltas / {len(pieces)} server pieces, {len(ours)} chars, "
        f"equal={ours == direct}, usage={turn.end.get('usage')}, "
        f"first delta {turn.first * 1000:.0f} ms (server direct {direct_first * 1000:.0f} ms), "
        f"end={turn.reason}"
    )
    if not ok:
        figures += f"\n      llmsock: {shown(ours, 200)}\n      server:  {shown(direct, 200)}"
        figures += turn.error_line
    report.line("streaming equals llama-server's answer", ok, started, figures)


async def check_stop(report: Report, server: LlamaServer) -> None:
    """Stop mid-answer ends the turn aborted and llama-server cancels its task."""
    started = time.monotonic()
    offset = server.log_size()
    aborted_at = [0.0]

    async def stop_after_five(turn: Turn) -> None:
        if len(turn.deltas) == 5:
            aborted_at[0] = time.monotonic()
            await client.abort()

    async with llmsock(server.base_url) as (client, _):
        turn = await asyncio.wait_for(
            run_turn(client, LONG_PROMPT, on_delta=stop_after_five, maxTokens=1500), 300
        )
    ended = time.monotonic()
    cancelled = await wait_for_log(server, offset, CANCEL_LOG, timeout=10)
    seen = f"{(cancelled - aborted_at[0]) * 1000:.0f} ms after Stop" if cancelled else "not within 10 s"
    ok = turn.reason == "aborted" and bool(cancelled) and len(turn.deltas) < 60
    figures = (
        f"end={turn.reason} after {len(turn.deltas)} deltas, ended {(ended - aborted_at[0]) * 1000:.0f} ms "
        f"after Stop; server log '{CANCEL_LOG}': {seen}"
    )
    if turn.error:
        figures += f"; error: {turn.error}"
    report.line("Stop cancels llama-server's task", ok, started, figures)


async def wait_for_log(server: LlamaServer, offset: int, needle: str, *, timeout: float) -> float:
    """Return when ``needle`` appeared in the log after ``offset`` (monotonic time), or 0.0."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in server.log_since(offset):
            return time.monotonic()
        await asyncio.sleep(0.05)
    return 0.0


async def check_error_then_turn(report: Report, server: LlamaServer) -> None:
    """A turn that failed before any text (connection refused) leaves a history Gemma accepts."""
    started = time.monotonic()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    async with llmsock(dead, max_retries=0, timeout=5.0) as (client, ours):
        failed = await run_turn(client, "Hello, are you there?")
        use_llama_server(ours, server)
        after = await run_turn(client, "Say hello in one short sentence.", maxTokens=40)
    ok = failed.reason == "error" and after.answered
    figures = f"failed turn: {failed.reason} ({shown(failed.error, 60)}); "
    figures += f"next turn: {after.reason}, {shown(after.text, 50)}{after.error_line}"
    report.line("connection error, then a turn (Gemma template)", ok, started, figures)


async def check_stop_first_then_turn(report: Report, server: LlamaServer) -> None:
    """Stop sent right after the prompt ends the turn aborted, and the next prompt still works."""
    started = time.monotonic()
    async with llmsock(server.base_url) as (client, _):
        events = client.events()
        message_id = await client.send_prompt(LONG_PROMPT, maxTokens=400)
        reply = await client.abort()
        first = await follow(events, message_id)
        after = await run_turn(client, "Say hello in one short sentence.", maxTokens=40)
    ok_first = first.reason == "aborted"
    report.line(
        "Stop right after the prompt ends it aborted",
        ok_first,
        started,
        f"end={first.reason} after {len(first.deltas)} deltas; abort reply: {shown(json.dumps(reply), 80)}",
    )
    figures = f"next turn: {after.reason}, {shown(after.text, 50)}{after.error_line}"
    report.line("then a turn (Gemma template)", after.answered, started, figures)


async def follow(events: Any, message_id: str, *, on_delta: Callable[[Turn], Any] | None = None) -> Turn:
    """Follow the turn of ``message_id`` on an event stream opened before it was sent."""
    turn = Turn()
    started = time.monotonic()
    turn_id: str | None = None
    async for event in events:
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("event"), dict):
            continue
        body, meta = data["event"], data.get("meta") or {}
        if event.get("name") == "interaction.error" and body.get("requestId") == message_id:
            turn.end = {"type": "error", **body}
            return turn
        if body.get("messageId") == message_id and body.get("type") in ("message", "start"):
            turn_id = meta.get("turnId")
            continue
        if event.get("name") != "interaction.model" or turn_id is None or meta.get("turnId") != turn_id:
            continue
        kind = body.get("type")
        if kind == "delta" and isinstance(body.get("text"), str):
            turn.first = turn.first or time.monotonic() - started
            turn.deltas.append(body["text"])
            if on_delta is not None:
                await on_delta(turn)
        elif kind == "delta" and "toolCall" in body:
            turn.tool_calls.append(body["toolCall"])
        elif kind == "delta" and "toolResult" in body:
            turn.tool_results.append(body["toolResult"])
        elif kind in ("end", "error"):
            turn.end = body
            return turn
    return turn


def use_llama_server(ours: ServerThread, server: LlamaServer) -> None:
    """Switch llmsock's model to llama-server (the chat so far was answered by another)."""
    ours.set_model(f"openai:{MODEL}", base_url=server.base_url, api_key="not-needed", temperature=0.0)


def weather_tools() -> tuple[ToolRegistry, list[str]]:
    """Return a registry with one tool, ``get_weather``, and the list its calls are recorded in."""
    calls: list[str] = []
    registry = ToolRegistry()

    def get_weather(city: str) -> str:
        """Return the current weather in a city."""
        calls.append(city)
        return f"Sunny, 21 degrees Celsius in {city}."

    registry.register(get_weather)
    return registry, calls


async def check_tool_history(report: Report, server: LlamaServer) -> None:
    """A tool call and its result in the history reach Gemma's strict template, and it answers.

    The builtin model makes the call (``/tool``), so the round trip does not hang on whether a
    270M model decides to call a tool; the next turn sends the call and its result to llama-server.
    """
    started = time.monotonic()
    registry, calls = weather_tools()
    async with llmsock(server.base_url, tools=registry) as (client, ours):
        ours.set_model("builtin:0")
        called = await run_turn(client, '/tool get_weather {"city": "Paris"}')
        use_llama_server(ours, server)
        after = await run_turn(client, "What is the weather in Paris, according to the tool?", maxTokens=40)
    results = [bool(r.get("ok")) for r in called.tool_results]
    ok = calls == ["Paris"] and results == [True] and after.answered
    figures = f"call {[c.get('name') for c in called.tool_calls]} ran {len(calls)}x, ok={results}; "
    figures += f"Gemma's turn: {after.reason}, {shown(after.text, 50)}{after.error_line}"
    report.line("tool call + result in history, then Gemma", ok, started, figures)


async def check_tools(report: Report, server: LlamaServer) -> None:
    """Offer a tool and see whether the model calls it; a full round trip if it does."""
    started = time.monotonic()
    registry, calls = weather_tools()
    tries: list[str] = []
    async with llmsock(server.base_url, tools=registry) as (client, _):
        for prompt in TOOL_PROMPTS:
            turn = await run_turn(client, prompt, maxTokens=120, tools=True)
            names = [str(c.get("name")) for c in turn.tool_calls]
            results = [bool(r.get("ok")) for r in turn.tool_results]
            tries.append(
                f"calls={names} results ok={results} end={turn.reason} "
                f"text={shown(''.join(turn.deltas), 60)}"
                + (f" error={shown(turn.error, 120)}" if turn.error else "")
            )
            if turn.tool_calls or turn.error:
                break
    if calls or any("error=" in t for t in tries):
        ok = bool(calls) and all("error=" not in t for t in tries)
        report.line("model-initiated tool round trip (--jinja)", ok, started, "\n      ".join(tries))
    else:  # the model chose not to call: nothing of llmsock's was tested, nothing failed
        report.note(
            "model-initiated tool call (--jinja)",
            started,
            "the model did not call the tool: " + "; ".join(tries),
        )


async def check_tools_refused(report: Report, server: LlamaServer) -> None:
    """On a server that refuses tools, tools are not sent unless asked for, and asking says why it failed."""
    started = time.monotonic()
    registry, _ = weather_tools()
    async with llmsock(server.base_url, tools=registry) as (client, _):
        plain = await run_turn(client, "Say hello in one short sentence.", maxTokens=40)
    report.line(
        "tools registered, not asked: a turn works (--no-jinja)",
        plain.reason in ("stop", "length"),
        started,
        f"end={plain.reason}, {shown(''.join(plain.deltas), 50)}"
        + (f"; error: {plain.error}" if plain.error else ""),
    )
    started = time.monotonic()
    registry, _ = weather_tools()
    async with llmsock(server.base_url, tools=registry) as (client, _):
        refused = await run_turn(client, TOOL_PROMPTS[0], maxTokens=40, tools=True)
    ok = refused.reason in ("stop", "length") or (
        "refused the tools offered" in refused.error and "--jinja" in refused.error
    )
    report.line(
        "tools refused: the error names the cause",
        ok,
        started,
        f"end={refused.reason}; error: {shown(refused.error, 160)}",
    )


async def run(args: argparse.Namespace) -> int:
    """Run every check against both llama-servers; return how many failed."""
    report = Report()
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    with llama_server(args, log_dir, jinja=True) as server:
        await check_template(report, server)
        await check_streaming(report, server)
        await check_stop(report, server)
        await check_error_then_turn(report, server)
        await check_stop_first_then_turn(report, server)
        await check_tool_history(report, server)
        await check_tools(report, server)
    with llama_server(args, log_dir, jinja=False) as server:
        await check_tools_refused(report, server)
    total = report.passed + len(report.failed)
    print(f"{report.passed} passed, {len(report.failed)} failed", flush=True)
    for name in report.failed:
        print(f"  failed: {name}")
    return min(len(report.failed), 100) if total else 1


def main() -> None:
    """Parse the arguments and run the checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the llama-server binary")
    parser.add_argument("--gguf", required=True, help="the Gemma 3 270M GGUF file")
    parser.add_argument("--log-dir", required=True, help="where llama-server's logs go")
    parser.add_argument("--chat-template", required=True, help="Gemma's Jinja chat template file")
    parser.add_argument("--threads", type=int, default=2)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
