"""The comm transport: a view's link to a session through the kernel, batched under IOPub's limit."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from llmsock_widget.core.events import ModelDelta, ModelStart
from llmsock_widget.server.commlink import INTERVAL, CommLink, coalesce
from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

from .conftest import MakeServer


class View:
    """Stands in for the widget's comm: records what the link sends, from the server thread."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.changed = threading.Condition()

    def send(self, message: dict[str, Any]) -> None:
        import time

        with self.changed:
            self.messages.append(json.loads(json.dumps(message)))  # what the comm would carry
            self.times.append(time.monotonic())
            self.changed.notify_all()

    def events(self) -> list[dict[str, Any]]:
        with self.changed:
            batches = [m for m in self.messages if m["kind"] == "frames"]
        return [
            json.loads(f)["data"]["event"] | {"_meta": json.loads(f)["data"].get("meta", {})}
            for b in batches
            for f in b["frames"]
        ]

    def wait_for(self, predicate: Any) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), TIMEOUT), self.messages[-3:]


def ended(view: View) -> bool:
    return any(e.get("type") == "end" for e in view.events())


def link(
    server: ServerThread, view: View, session: str = "s1", resume: Any = None, name: str = "L1"
) -> CommLink:
    commlink = CommLink(server, name, view.send)
    server.submit(commlink.open(session, resume)).result(TIMEOUT)
    return commlink


def test_a_link_streams_a_whole_reply_in_few_messages(server: ServerThread) -> None:
    view = View()
    commlink = link(server, view)
    assert view.messages[0] == {"kind": "linked", "link": "L1", "session": "s1"}
    server.call_soon(commlink.command, "/long 10000")
    view.wait_for(ended)
    events = view.events()
    assert events[0]["type"] == "ready"
    text = "".join(e["text"] for e in events if e["type"] == "delta")
    end = next(e for e in events if e["type"] == "end")
    assert text == end["text"], "the merged deltas carry every character, in order"
    assert len(end["text"].split()) > 5000
    # Sequence numbers only grow, and the last delta carries the last delta's number.
    seqs = [e["_meta"]["sequence"] for e in events if "sequence" in e["_meta"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # One comm message per interval at most: far under Jupyter's 1,000 messages a second.
    duration = view.times[-1] - view.times[0]
    assert len(view.messages) <= duration / INTERVAL + 5
    frames = [m for m in view.messages if m["kind"] == "frames"]
    assert len(frames) < 1000


def test_stop_through_the_link_aborts_the_turn(server: ServerThread) -> None:
    view = View()
    commlink = link(server, view)
    server.call_soon(commlink.command, "/hold 30")
    view.wait_for(lambda v: any(e.get("type") == "delta" for e in v.events()))
    server.call_soon(commlink.command, json.dumps({"type": "control", "id": "c1", "data": {"type": "abort"}}))
    view.wait_for(ended)
    end = next(e for e in view.events() if e["type"] == "end")
    assert end["finishReason"] == "aborted"


def test_a_bad_frame_gets_an_error_and_the_link_goes_on(server: ServerThread) -> None:
    view = View()
    commlink = link(server, view)
    server.call_soon(
        commlink.command, json.dumps({"type": "control", "id": "c1", "data": {"type": "explode"}})
    )
    view.wait_for(lambda v: any(e.get("type") == "error" for e in v.events()))
    server.call_soon(commlink.command, "/echo still here")
    view.wait_for(ended)
    assert next(e for e in view.events() if e["type"] == "end")["text"] == "still here"


def test_two_links_see_the_same_session(server: ServerThread) -> None:
    first, second = View(), View()
    one = link(server, first, name="A")
    link(server, second, name="B")
    server.call_soon(one.command, "/long 300")
    first.wait_for(ended)
    second.wait_for(ended)

    def transcript(view: View) -> str:
        return "".join(e["text"] for e in view.events() if e["type"] == "delta")

    assert transcript(first) == transcript(second) != ""
    assert all(m["link"] == "B" for m in second.messages)


def test_a_link_resumes_from_where_it_stopped(server: ServerThread) -> None:
    view = View()
    first = link(server, view)
    server.call_soon(first.command, "/long 50")
    view.wait_for(ended)
    epoch = next(e for e in view.events() if e["type"] == "ready")["epoch"]
    server.call_soon(first.close, 1000, "")
    view.wait_for(lambda v: v.messages[-1]["kind"] == "unlinked")
    # Another turn runs while the view is away.
    other = View()
    runner = link(server, other, name="R")
    server.call_soon(runner.command, "/echo while you were away")
    other.wait_for(ended)
    last = max(e["_meta"]["sequence"] for e in view.events() if "sequence" in e["_meta"])
    again = View()
    link(server, again, resume=(epoch, last), name="L2")
    again.wait_for(lambda v: any(e.get("type") == "end" for e in v.events()))
    ready = again.events()[0]
    assert ready["resumed"] is True and ready["replayed"] >= 3
    assert "while you were away" in "".join(e.get("text", "") for e in again.events() if e["type"] == "delta")


def test_an_invalid_session_id_unlinks_with_4400(server: ServerThread) -> None:
    view = View()
    link(server, view, session="../etc")
    assert view.messages == [
        {"kind": "unlinked", "link": "L1", "code": 4400, "reason": view.messages[0]["reason"]}
    ]


def test_stopping_the_server_unlinks_every_view(make_server: MakeServer) -> None:
    server = make_server()
    view = View()
    link(server, view)
    assert server.status()["transports"] == {"comm": 1}
    server.stop()
    assert view.messages[-1]["kind"] == "unlinked" and view.messages[-1]["code"] == 1001


@pytest.mark.parametrize("split", [1, 2, 7])
def test_coalesce_merges_runs_of_one_message_and_keeps_the_rest(split: int) -> None:
    def delta(seq: int, text: str, message: str = "m1") -> ModelDelta:
        return ModelDelta(session_id="s", seq=seq, ts=seq, turn_id="t", text=text, message_id=message)

    start = ModelStart(session_id="s", seq=1, ts=1, turn_id="t", model="builtin", message_id="m1")
    words = [f"w{i} " for i in range(14)]
    events: list[Any] = [start] + [delta(2 + i, w) for i, w in enumerate(words)]
    events.insert(split + 1, delta(100, "other", "m2"))
    merged = coalesce(events)
    assert merged[0] is start
    texts = [e.text for e in merged[1:]]
    assert "".join(texts) == "".join(e.text for e in events[1:])
    assert [e.message_id for e in merged[1:]] == ["m1", "m2", "m1"]
    assert merged[-1].seq == events[-1].seq
