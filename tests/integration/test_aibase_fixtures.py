"""Replay what seed 004's real client sent (tests/fixtures/wire/aibase/, captured from
Cantika23/aibase's WSClient under Bun by scripts/dev/aibase_client.sh) and check that llmsock
answers each frame with what the client needs: the same kinds of frame, ids and fields."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from llmsock_widget.models import BuiltinModel
from tests.conftest import TIMEOUT

from .conftest import MakeServer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "wire" / "aibase" / "session.json"
CAPTURE = json.loads(FIXTURE.read_text(encoding="utf-8"))
TRAFFIC: list[dict[str, Any]] = CAPTURE["traffic"]
# What the client acts on: replies and turn frames by their id, and the welcome.
ANSWERS = {
    "control_response",
    "pong",
    "llm_complete",
    "error",
    "llm_chunk",
    "tool_call",
    "tool_result",
    "user_message",
}


def key(frame: dict[str, Any]) -> tuple[str, str] | None:
    """Return how a server frame is matched across runs: its type and id, or None if it is not matched."""
    kind = frame.get("type")
    if kind == "status" and frame.get("id") == "ready":
        return ("status", "ready")
    return (str(kind), str(frame.get("id"))) if kind in ANSWERS else None


class Tab:
    """One of the client's connections, replayed: what it received, and which of that was matched."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.used: set[int] = set()
        self.closed: int | None = None

    async def find(self, wanted: tuple[str, str]) -> dict[str, Any]:
        """Return the first unmatched frame with key ``wanted``, reading until it comes."""
        while True:
            for i, frame in enumerate(self.received):
                if i not in self.used and key(frame) == wanted:
                    self.used.add(i)
                    return frame
            self.received.append(json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT)))

    async def close_code(self) -> int | None:
        """Read until the server closes; return its close code."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def same_answer(captured: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Return how ``live`` differs from ``captured`` in what the client and its page read."""
    got, want = live.get("data") or {}, captured.get("data") or {}
    problems = [f"missing {k}" for k in want if k not in got]
    for field in ("status", "type", "success", "aborted", "finishReason", "toolName", "result", "code"):
        if field in want and got.get(field) != want[field]:
            problems.append(f"{field}: {got.get(field)!r} != {want[field]!r}")
    if "history" in want:
        history = got.get("history") if isinstance(got.get("history"), list) else []
        roles = [[m.get("role") for m in h] for h in (history, want["history"])]
        if roles[0] != roles[1] or not all(set(m) == {"role", "content"} for m in history):
            problems.append(f"history {roles[0]} != {roles[1]}")
    if captured.get("type") == "status" and got.get("convId") != got.get("sessionId"):
        problems.append("the welcome's convId is not its session")
    return problems


async def replay(make_server: MakeServer) -> list[str]:
    """Send the captured client frames in order; before each, wait for what the capture got before it."""
    server = make_server(model=BuiltinModel(tokens_per_second=200))
    conv = next(f["frame"]["data"]["convId"] for f in TRAFFIC if key(f["frame"]) == ("status", "ready"))
    url = f"ws://127.0.0.1:{server.port}/api/ws?convId={conv}"
    tabs: dict[str, Tab] = {}
    expected: list[tuple[str, dict[str, Any]]] = []
    refusals: dict[str, int] = {}
    problems: list[str] = []

    async def settle() -> None:
        for name, captured in expected:
            wanted = key(captured)
            assert wanted is not None
            live = await tabs[name].find(wanted)
            problems.extend(f"{name} {wanted}: {p}" for p in same_answer(captured, live))
        expected.clear()

    for entry in TRAFFIC:
        name, frame = entry["tab"], entry["frame"]
        if entry["dir"] == "server":
            if key(frame) is not None and (name, key(frame)) not in [(n, key(f)) for n, f in expected]:
                expected.append((name, frame))
        elif entry["dir"] == "close" and 4000 <= frame["code"] < 5000:
            refusals[name] = frame["code"]
        elif entry["dir"] == "client":
            await settle()
            if frame["type"] == "auth":  # the client's (re)connect: the old connection, if any, drops
                if name in tabs:
                    tabs[name].ws.transport.abort()
                tabs[name] = Tab(await connect(url, open_timeout=TIMEOUT))
                token = server.token if frame["token"] == "<token>" else secrets.token_urlsafe(32)
                frame = {**frame, "token": token}
            try:
                await tabs[name].ws.send(json.dumps(frame))
            except ConnectionClosed:
                pass  # a refused tab's queued frames
    await settle()
    for name, code in refusals.items():
        if await tabs[name].close_code() != code:
            problems.append(f"{name} was not closed with {code}")
    for tab in tabs.values():
        await tab.ws.close()
    return problems


def test_the_fixture_is_a_real_capture() -> None:
    """The capture names the client and Bun, and holds every kind of frame the replay checks."""
    assert CAPTURE["client"].startswith("Cantika23/aibase") and CAPTURE["bun"]
    kinds = {(e["dir"], e["frame"].get("type")) for e in TRAFFIC}
    for kind in ("user_message", "control", "ping", "auth"):
        assert ("client", kind) in kinds
    controls = {e["frame"]["data"]["type"] for e in TRAFFIC if e["frame"].get("type") == "control"}
    assert controls == {"get_history", "get_status", "abort", "clear_history", "pause", "resume"}
    tokens = {e["frame"]["token"] for e in TRAFFIC if e["frame"].get("type") == "auth"}
    assert tokens == {"<token>", "<wrong-token>"}  # no real token is kept, not even a spent one


def test_llmsock_answers_the_real_clients_frames_as_captured(make_server: MakeServer, run) -> None:
    """Every reply, turn frame and refusal the real client got comes again, with the fields it reads."""
    assert run(replay(make_server)) == []
