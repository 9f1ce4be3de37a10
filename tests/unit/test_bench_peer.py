"""The side-by-side benchmark's pure parts: counting deltas by the text, the adapters, the ratios."""

from __future__ import annotations

import json
import socket

import pytest

from benchmarks.common import BenchFailure
from benchmarks.peer import ADAPTERS, LLMSOCK, Peer, Read, deltas_in, ratios, reachable, render
from llmsock_widget.core.events import ModelDelta, ModelEnd, joined_deltas
from llmsock_widget.wire import protocol

TOKENS = ["You", " said", ":", ' "', "/", "long", " 5", '".']


def test_a_whole_answer_counts_every_delta_however_it_was_framed() -> None:
    """One frame per token or all merged into one: the text is the same, so is the count."""
    assert deltas_in("".join(TOKENS), TOKENS) == len(TOKENS)
    merged = ["".join(TOKENS[:3]), "".join(TOKENS[3:])]
    assert deltas_in("".join(merged), TOKENS) == len(TOKENS)


def test_a_cut_or_wrong_answer_counts_only_the_whole_tokens_before_the_difference() -> None:
    assert deltas_in("", TOKENS) == 0
    assert deltas_in("You sa", TOKENS) == 1  # " said" is not whole
    assert deltas_in("You said: 'x", TOKENS) == 3  # the quote differs
    assert deltas_in("".join(TOKENS) + " more", TOKENS) == len(TOKENS)


def _envelope(event: ModelDelta | ModelEnd) -> bytes:
    frame = protocol.encode(event, "envelope")
    assert frame is not None
    return frame.encode()


def _delta(seq: int, text: str) -> ModelDelta:
    return ModelDelta(session_id="s", seq=seq, ts=0, turn_id="t", text=text, message_id="m")


def test_the_llmsock_adapter_reads_merged_deltas_and_the_end() -> None:
    read = ADAPTERS[LLMSOCK].read
    assert read(_envelope(_delta(4, "You"))) == Read(text="You")
    merged = joined_deltas([_delta(4, "You"), _delta(5, " said")])
    assert read(_envelope(merged)) == Read(text="You said")
    end = ModelEnd(session_id="s", seq=6, ts=0, turn_id="t", finish_reason="stop", text="You said")
    assert read(_envelope(end)) == Read(end=True)
    assert read(b'{"name":"interaction.status","data":{"event":{"type":"status"}}}') == Read()
    with pytest.raises(BenchFailure):
        read(b'{"name":"interaction.error","data":{"event":{"type":"error","code":"x"}}}')


# Frames as llm-core's kitchen-sink server (v1.21.5, under Bun) sends them, captured.
_LLMCORE_FRAMES = [
    b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"start","messageId":"c1"}}',
    b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"text-start","id":"c1:text"}}',
    b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"text-delta","id":"c1:text","delta":"You"}}',
    b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"text-delta","id":"c1:text","delta":" said"}}',
    b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"text-end","id":"c1:text"}}',
    b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"finish","finishReason":"stop"}}',
    b'{"type":"ui.done","requestId":"r1","status":"ok","token":null}',
]


def test_the_llmcore_adapter_reads_text_deltas_and_done() -> None:
    reads = [ADAPTERS["llmcore"].read(frame) for frame in _LLMCORE_FRAMES]
    assert "".join(r.text or "" for r in reads) == "You said"
    assert [r.end for r in reads] == [False] * 6 + [True]


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"ui.error","requestId":"r1","error":"invalid_message"}',
        b'{"type":"ui.done","requestId":"r1","status":"error","token":null}',
        b'{"type":"ui.chunk","requestId":"r1","chunk":{"type":"error","errorText":"boom"}}',
    ],
)
def test_the_llmcore_adapter_fails_on_the_peers_errors(frame: bytes) -> None:
    with pytest.raises(BenchFailure):
        ADAPTERS["llmcore"].read(frame)


def test_the_llmcore_prompt_is_a_chat_send_with_the_text_as_the_last_user_message() -> None:
    """The shape the kitchen-sink server's parseClientMessage accepts (examples/.../protocol.ts)."""
    frame = json.loads(ADAPTERS["llmcore"].prompt("/long 100", 7))
    assert frame["type"] == "chat.send"
    assert isinstance(frame["requestId"], str) and isinstance(frame["chatId"], str)
    (message,) = frame["messages"]
    assert message["role"] == "user" and isinstance(message["id"], str)
    assert message["parts"] == [{"type": "text", "text": "/long 100"}]


def _row(target: str, round_: int, **figures: float) -> dict[str, object]:
    return {"target": target, "round": round_, **figures}


def test_ratios_pair_the_servers_round_by_round() -> None:
    answers = [
        _row(LLMSOCK, 1, deltas_per_second=300.0),
        _row("peer", 1, deltas_per_second=100.0),
        _row("peer", 2, deltas_per_second=100.0),
        _row(LLMSOCK, 2, deltas_per_second=200.0),
    ]
    bursts = [_row(LLMSOCK, 1, seconds=1.0), _row("peer", 1, seconds=1.5)]
    r = ratios(answers, bursts)
    assert r["answer_deltas_per_second"] == [3.0, 2.0] and r["answer_median"] == 2.5
    assert r["burst_speed"] == [1.5] and r["burst_median"] == 1.5
    assert ratios([_row(LLMSOCK, 1, deltas_per_second=1.0)], []) == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_peer_that_does_not_answer_is_reported_not_measured() -> None:
    why = reachable(Peer(f"ws://127.0.0.1:{_free_port()}/ws"), timeout=5)
    assert why is not None and why
    row = {
        "target": LLMSOCK,
        "round": 1,
        "sessions": 1,
        "deltas": 10,
        "seconds": 0.01,
        "deltas_per_second": 1000.0,
        "frames": 3,
        "server_cpu_us_per_delta": 5.0,
        "client_cpu_us_per_delta": 9.0,
        "load": 0.5,
    }
    report = {
        "peer": {"url": "ws://127.0.0.1:1/ws", "adapter": "llmcore"},
        "alone": why,
        "deltas": 10,
        "sessions": 1,
        "burst_deltas": 10,
        "rounds": 1,
        "answers": [row],
        "bursts": [row],
        "ratios": {},
    }
    text = render(report)
    assert "llmsock alone" in text and why in text
    assert "0.50" in text  # every figure with the load it was taken at
    assert "goal" not in text  # no ratio without a peer


def test_a_peer_token_goes_in_the_authorization_header() -> None:
    """Another llmsock server as the peer needs its token; llm-core's example server takes none."""
    assert Peer("ws://127.0.0.1:1/ws", LLMSOCK, token="t").target().headers == {"Authorization": "Bearer t"}
    assert Peer("ws://127.0.0.1:1/ws").target().headers == {}
