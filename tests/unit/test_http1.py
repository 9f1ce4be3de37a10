"""The response body's framing: the same bytes as h11 (the parser under httpx) reads, cut anywhere."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsock_widget.models.http1 import ChunkedBody, ClosedBody, FramingError, LengthBody, framing

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _h11_body(wire: bytes) -> tuple[bytes, bytes]:
    """Return the body h11 reads from ``wire`` (a chunked response) and the bytes after it."""
    client = h11.Connection(our_role=h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(HEAD + wire)
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body, client.trailing_data[0]
        elif event is h11.NEED_DATA:
            raise AssertionError("h11 wants more bytes: the test's body is not whole")


def _decoded(wire: bytes, cuts: list[int]) -> tuple[bytes, ChunkedBody]:
    reader = ChunkedBody()
    out = b""
    start = 0
    for cut in [*sorted(cuts), len(wire)]:
        out += reader.feed(wire[start:cut])
        start = cut
    return out, reader


chunk = st.tuples(
    st.binary(min_size=1, max_size=40),
    st.sampled_from(["", ";ext", ";name=value", ";a=b "]),
    st.sampled_from(["%x", "%X", "%04x"]),
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A chunked body (chunks with extensions, hex in either case, trailers) and what follows it."""
    chunks = draw(st.lists(chunk, max_size=12))
    wire = b"".join(
        (form % len(data)).encode() + ext.encode() + b"\r\n" + data + b"\r\n" for data, ext, form in chunks
    )
    trailers = draw(st.sampled_from([b"", b"x-checksum: 1\r\n", b"a: 1\r\nb: 2\r\n"]))
    after = draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))
    return wire + b"0\r\n" + trailers + b"\r\n", after


@given(chunked(), st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_a_chunked_body_cut_anywhere_reads_as_h11_reads_it(
    body: tuple[bytes, bytes], cuts: list[int]
) -> None:
    wire, after = body
    expected, expected_rest = _h11_body(wire + after)
    cuts = [cut for cut in cuts if cut <= len(wire + after)]
    out, reader = _decoded(wire + after, cuts)
    assert out == expected
    assert reader.done
    assert reader.rest == expected_rest == after


@given(chunked())
def test_the_body_is_not_done_until_its_last_byte(body: tuple[bytes, bytes]) -> None:
    wire, _ = body
    reader = ChunkedBody()
    for i in range(len(wire) - 1):
        reader.feed(wire[i : i + 1])
        assert not reader.done
    reader.feed(wire[-1:])
    assert reader.done


def test_the_chunks_of_one_read_come_out_as_one_piece() -> None:
    wire = b"".join(b"%x\r\n%s\r\n" % (len(d), d) for d in (b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"))
    assert ChunkedBody().feed(wire) == b"data: a\n\ndata: b\n\ndata: c\n\n"


@pytest.mark.parametrize(
    "wire",
    [
        b"0x5\r\nhello\r\n",  # Python's int() would read these three
        b"+5\r\nhello\r\n",
        b"1_0\r\n",
        b"zz\r\n",
        b"\r\n",
        b"5\r\nhelloXX",  # no CRLF after the data
        b"1" * 20 + b"\r\n",
        b"5" * 5000,  # a size line that never ends
    ],
)
def test_malformed_framing_is_an_error(wire: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedBody().feed(wire)


def test_a_length_body_stops_at_its_length() -> None:
    reader = LengthBody(5)
    assert reader.feed(b"hel") == b"hel" and not reader.done
    assert reader.feed(b"loHTTP") == b"lo" and reader.done
    assert reader.rest == b"HTTP"


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (200, [(b"transfer-encoding", b"chunked")], ChunkedBody),
        (200, [(b"transfer-encoding", b"Chunked")], ChunkedBody),
        (200, [(b"content-length", b"12")], LengthBody),
        (200, [], ClosedBody),
        (204, [(b"content-length", b"12")], LengthBody),
        (304, [], LengthBody),
    ],
)
def test_framing_follows_status_and_headers(
    status: int, headers: list[tuple[bytes, bytes]], kind: type
) -> None:
    assert isinstance(framing(status, headers), kind)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"transfer-encoding", b"gzip, chunked")],
        [(b"transfer-encoding", b"chunked, chunked")],
        [(b"content-length", b"12"), (b"content-length", b"13")],
        [(b"content-length", b"-1")],
    ],
)
def test_framing_h11_refuses_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(FramingError):
        framing(200, headers)
