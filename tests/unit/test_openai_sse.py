"""The chat-completion event stream reader: every line form, and any split of the bytes."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from llmsock_widget.models import openai_sse
from llmsock_widget.models.openai_sse import DEFAULT_ERROR_MESSAGE, EventReader, StreamEnd


def read(*pieces: bytes) -> tuple[list[Any], StreamEnd | None]:
    """Feed ``pieces`` one by one; return every payload and how the stream ended."""
    reader = EventReader()
    out: list[Any] = []
    for piece in pieces:
        out += reader.feed(piece)
    return out, reader.end


def chunk(text: str) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


def event(payload: Any, eol: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(payload).encode() + eol + eol


# -- line forms ---------------------------------------------------------------------------------


def test_data_events_come_out_parsed_in_order_and_done_ends_the_stream() -> None:
    body = event(chunk("Hel")) + event(chunk("lo")) + b"data: [DONE]\n\n"
    assert read(body) == ([chunk("Hel"), chunk("lo")], StreamEnd("done"))


def test_every_line_end_reads_the_same() -> None:
    for eol in (b"\n", b"\r\n", b"\r"):
        body = event(chunk("a"), eol) + b": keep-alive" + eol + eol + event(chunk("b"), eol)
        assert read(body) == ([chunk("a"), chunk("b")], None), eol


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    # Were the LF read as a second line end, the event would end after its first data line.
    assert read(b'data: {"a":\r', b"\ndata: 1}\r", b"\n\r\n") == ([{"a": 1}], None)


def test_comments_ids_retries_and_unknown_fields_are_ignored() -> None:
    body = b": keep-alive\n\n:\nid: 7\nretry: 100\nfoo: bar\nnonsense\n" + event(chunk("x"))
    assert read(body) == ([chunk("x")], None)


def test_the_data_lines_of_one_event_are_joined_with_a_line_feed() -> None:
    body = b'data: {"choices":\ndata: [],\ndata:"text": "a"}\n\n'
    assert read(body) == ([{"choices": [], "text": "a"}], None)
    # A string cannot hold a raw line feed: joined data that splits one is not JSON.
    assert read(b'data: "a\ndata: b"\n\n') == ([], StreamEnd("not_json"))


def test_one_space_after_the_colon_is_dropped_and_no_space_is_needed() -> None:
    assert read(b'data:{"a": 1}\n\ndata:  2\n\n') == ([{"a": 1}, 2], None)


def test_an_event_without_data_or_cut_off_by_the_end_of_the_body_is_not_dispatched() -> None:
    assert read(b"event: ping\n\n", b"data:\n\n", b"data\n\n") == ([], None)
    assert read(event(chunk("a"))[:-1]) == ([], None)  # no blank line: the event never ended


def test_events_after_done_are_not_read() -> None:
    body = event(chunk("a")) + b"data: [DONE]\n\n" + event(chunk("b")) + b"data: {broken\n\n"
    assert read(body) == ([chunk("a")], StreamEnd("done"))
    reader = EventReader()
    reader.feed(body)
    assert reader.feed(event(chunk("c"))) == []


def test_data_that_is_not_json_ends_the_stream_after_the_events_before_it() -> None:
    assert read(event(chunk("a")) + b'data: {"id": "broken", "choices": [\n\n' + event(chunk("b"))) == (
        [chunk("a")],
        StreamEnd("not_json"),
    )
    assert read(b"data: \xff\xfe\n\n") == ([], StreamEnd("not_json"))  # not UTF-8


def test_an_error_object_ends_the_stream_with_the_providers_message() -> None:
    error = {"message": "The server is overloaded", "type": "server_error"}
    body = event(chunk("a")) + event({"error": error}) + event(chunk("b"))
    assert read(body) == ([chunk("a")], StreamEnd("error", "The server is overloaded", error))


def test_an_error_without_a_message_gets_the_openai_packages_words() -> None:
    # {"error": "text"} (Ollama's shape) has no message member: the openai package says this.
    assert read(event({"error": "model crashed"})) == (
        [],
        StreamEnd("error", DEFAULT_ERROR_MESSAGE, "model crashed"),
    )
    coded = {"code": 500}
    assert read(event({"error": coded}))[1] == StreamEnd("error", DEFAULT_ERROR_MESSAGE, coded)


def test_a_falsy_error_member_is_an_ordinary_chunk() -> None:
    payload = {"error": None, **chunk("a")}
    assert read(event(payload)) == ([payload], None)


def test_an_error_event_ends_the_stream_whatever_its_data() -> None:
    error = {"message": "rate limited upstream"}
    assert read(b"event: error\n" + event({"error": error})) == (
        [],
        StreamEnd("error", "rate limited upstream", error),
    )
    assert read(b"event: error\n" + event({"message": "context too long"}))[1] == StreamEnd(
        "error", "context too long", {"message": "context too long"}
    )
    assert read(b"event: error\ndata: upstream timed out\n\n")[1] == StreamEnd(
        "error", "upstream timed out", "upstream timed out"
    )
    assert read(b"event: error\n" + event([1]))[1] == StreamEnd("error", DEFAULT_ERROR_MESSAGE, [1])


def test_the_event_name_lasts_one_event() -> None:
    body = b"event: message\n" + event(chunk("a")) + b"event: error\n\n" + event(chunk("b"))
    assert read(body) == ([chunk("a"), chunk("b")], None)


def test_a_byte_order_mark_at_the_start_is_skipped() -> None:
    assert read(b"\xef\xbb\xbf" + event(chunk("a"))) == ([chunk("a")], None)


# -- any split of the bytes ---------------------------------------------------------------------

payloads = st.lists(
    st.fixed_dictionaries({"choices": st.just([]), "text": st.text(max_size=8)}), min_size=1, max_size=6
)
line_ends = st.sampled_from([b"\n", b"\r\n", b"\r"])
filler = st.sampled_from([b"", b": keep-alive", b"id: 3", b"retry: 10", b"event: message"])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, list[Any], bool]:
    """Return a stream of ``payloads`` with any line ends, comments and fields, and maybe [DONE]."""
    items = draw(payloads)
    eol = draw(line_ends)  # one kind per stream: a CR then an LF-first line end would be one CRLF
    parts: list[bytes] = []
    for item in items:
        text = json.dumps(item).encode()
        for line in draw(st.lists(filler, max_size=2)):
            if line:
                parts.append(line + eol)
        # One data line, or two split between the members (the lines are joined with a line feed).
        head, _, tail = text.partition(b", ")
        lines = [head + b",", tail] if draw(st.booleans()) else [text]
        parts += [b"data: " + line + eol for line in lines]
        parts.append(eol)
    done = draw(st.booleans())
    if done:
        parts += [b"data: [DONE]", eol, eol]
    return b"".join(parts), items, done


@given(bodies(), st.data())
def test_any_split_of_any_stream_reads_the_same(
    body: tuple[bytes, list[Any], bool], data: st.DataObject
) -> None:
    raw, items, done = body
    whole = read(raw)
    assert whole == (items, StreamEnd("done") if done else None)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert read(*pieces) == whole


def test_every_single_cut_and_byte_by_byte_read_the_same() -> None:
    raw = (
        b"\xef\xbb\xbf: hi\r\n\r\n"
        + event(chunk("a"), b"\r\n")
        + event(chunk("b"), b"\r")
        + b'event: message\ndata: {"choices":\ndata: []}\n\n'
        + b"data: [DONE]\r\n\r\n"
    )
    expected = ([chunk("a"), chunk("b"), {"choices": []}], StreamEnd("done"))
    for cut in range(len(raw) + 1):
        assert read(raw[:cut], raw[cut:]) == expected, cut
    assert read(*(raw[i : i + 1] for i in range(len(raw)))) == expected


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
).map(lambda value: json.dumps(value).encode())


@given(
    data=json_texts
    | st.binary(max_size=30)
    | st.sampled_from([b'"\\ud800"', b"NaN", b"[Infinity]", b"\xef\xbb\xbf{}"])
)
def test_data_decodes_as_json_loads_decodes_it(data: bytes) -> None:
    """With orjson or without it: the same values, and the same data refused."""
    try:
        expected: Any = json.dumps(json.loads(data.decode("utf-8")), sort_keys=True)  # NaN != NaN
    except ValueError:
        expected = ValueError
    for fast in (openai_sse.orjson, None):
        with mock.patch.object(openai_sse, "orjson", fast):  # None: as if orjson were not installed
            try:
                got: Any = json.dumps(openai_sse.loads(data), sort_keys=True)
            except ValueError:
                got = ValueError
        assert got == expected, f"orjson={fast is not None}"
