"""Approval in the ``llmcore`` dialect: what an llm-core client gets for a call that waits.

The fixture tests/fixtures/wire/llmcore/approval.json was captured from this server (an
approved and a denied call); ``FIXTURE=tests/fixtures/wire/llmcore/approval.json
scripts/dev/llmcore_reducer.sh`` feeds it to llm-core's own reducer, which skips the approval
deltas (docs/protocol.md, section 14.2).  Regenerate it with
``.venv/bin/python -m tests.integration.test_approval_llmcore``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.tools import ToolRegistry, default_registry
from tests.conftest import TIMEOUT

from .conftest import MakeServer, is_turn_end, open_client
from .test_llmcore_dialect import shape

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wire" / "llmcore" / "approval.json"
SESSION = "llmcore-approval"
PROMPT = '/tool set_value {"value": 7}'
TURNS = (("approved", True), ("denied", False))


def set_value(value: int) -> str:
    """Set the value.

    Args:
        value: the new value.
    """
    return f"value is {value}"


def tools() -> ToolRegistry:
    registry = default_registry()
    registry.register(set_value, approval=True)
    return registry


def is_idle(m: dict[str, Any]) -> bool:
    event = m["data"]["event"]
    return event["kind"] == "event-stream" and event["event"]["data"] == {"type": "status", "status": "idle"}


def is_approval(m: dict[str, Any]) -> bool:
    return m.get("name") == "interaction.model" and "approval" in m["data"]["event"]


async def capture(server: ServerThread) -> dict[str, Any]:
    """Answer one call yes and one no from an envelope client; record what an llmcore client gets."""
    driver = await open_client(server, session=SESSION, dialect="envelope")
    await driver.recv()
    follower = await open_client(server, session=SESSION, dialect="llmcore")
    ready = await follower.recv()
    turns = []
    for name, approved in TURNS:
        await driver.send(PROMPT)
        call = (await driver.recv_until(is_approval))[-1]["data"]["event"]["approval"]["toolCallId"]
        answer = {"toolCallId": call, "approved": approved}
        await driver.send({"type": "approval", "id": f"a-{name}", "data": answer})
        end = (await driver.recv_until(is_turn_end))[-1]["data"]["event"]
        frames = await follower.recv_until(is_idle)
        expect = {"type": end["type"], "text": end["text"], "finishReason": end["finishReason"]}
        turns.append({"name": name, "prompt": PROMPT, "expect": expect, "frames": frames})
    await follower.send({"type": "ping", "id": "ping-1"})
    replies = [await follower.recv()]
    await driver.ws.close()
    await follower.ws.close()
    return {"session": SESSION, "ready": ready, "turns": turns, "replies": replies}


def load_fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def joined(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return ``frames`` with runs of text deltas as one (the server may merge them, section 5.1)."""
    out: list[dict[str, Any]] = []
    for frame in frames:
        event = frame["data"]["event"]
        text = event["event"].get("text") if event["kind"] == "model" else None
        last = out[-1]["data"]["event"] if out else None
        if text is not None and last is not None and last["kind"] == "model" and "text" in last["event"]:
            merged = {**last, "event": {**last["event"], "text": last["event"]["text"] + text}}
            out[-1] = {**frame, "data": {"event": {**merged, "meta": event["meta"]}}}
        else:
            out.append(frame)
    return out


def test_approval_frames_in_the_llmcore_dialect_match_the_fixture(make_server: MakeServer, run) -> None:
    server = make_server(model=BuiltinModel(tokens_per_second=None), tools=tools())
    captured, fixture = run(capture(server)), load_fixture()
    assert shape(captured["ready"]) == shape(fixture["ready"])
    assert shape(captured["replies"]) == shape(fixture["replies"])
    for now, then in zip(captured["turns"], fixture["turns"], strict=True):
        assert shape(joined(now["frames"])) == shape(joined(then["frames"])), now["name"]
        assert now["expect"] == then["expect"]


def test_approval_deltas_are_model_deltas_an_llm_core_reducer_skips() -> None:
    """Each approval rides in a model delta with no text, toolCall or toolResult; the rest is as always."""
    for turn in load_fixture()["turns"]:
        model = [f["data"]["event"]["event"] for f in turn["frames"] if f["name"] == "interaction.model"]
        approvals = [e for e in model if "approval" in e or "approvalResult" in e]
        assert [sorted(e) for e in approvals] == [["approval", "type"], ["approvalResult", "type"]]
        assert all(e["type"] == "delta" for e in approvals)
        kinds = [next(k for k in e if k != "type") if e["type"] == "delta" else e["type"] for e in model]
        assert kinds == [
            "start",
            "toolCall",
            "usage",
            "approval",
            "approvalResult",
            "toolResult",
            "text",
            "usage",
            "end",
        ], turn["name"]


if __name__ == "__main__":  # regenerate the fixture
    srv = ServerThread(model=BuiltinModel(tokens_per_second=None), tools=tools()).start()
    try:
        data = asyncio.run(asyncio.wait_for(capture(srv), TIMEOUT * 3))
    finally:
        srv.stop()
    FIXTURE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
