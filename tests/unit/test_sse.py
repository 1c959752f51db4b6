"""afk.sse: incremental SSE framing (bytes <-> events)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afk.sse import ServerSentEvent, SSEDecoder, encode

STREAM_LF = (b": keep-alive comment\n"
             b"event: message_start\n"
             b"data: {\"a\":1}\n"
             b"\n"
             b"data: line one\n"
             b"data: line two\n"
             b"\n"
             b"data:no-space\n"
             b"\n"
             b"event: ping\n"
             b"data: \xf0\x9f\x99\x82 caf\xc3\xa9\n"
             b"\n"
             b"data: [DONE]\n"
             b"\n")

EXPECTED = [
    ("{\"a\":1}", "message_start"),
    ("line one\nline two", None),
    ("no-space", None),
    ("🙂 café", "ping"),
    ("[DONE]", None),
]


def _with_line_end(stream: bytes, end: bytes) -> bytes:
    return stream.replace(b"\n", end)


def _feed_all(decoder: SSEDecoder, chunks: list[bytes]) -> list[ServerSentEvent]:
    out: list[ServerSentEvent] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_whole_stream(end: bytes) -> None:
    decoder = SSEDecoder()
    events = decoder.feed(_with_line_end(STREAM_LF, end))
    assert [(e.data, e.event) for e in events] == EXPECTED
    assert not decoder.pending


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_byte_by_byte(end: bytes) -> None:
    decoder = SSEDecoder()
    events = _feed_all(decoder, _bytewise(_with_line_end(STREAM_LF, end)))
    assert [(e.data, e.event) for e in events] == EXPECTED
    assert not decoder.pending


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_cr_line_ends(bytewise: bool) -> None:
    # more bytes follow the last CR, so even a decoder that waits to see whether
    # a CR is half of a CRLF has every event
    data = _with_line_end(STREAM_LF, b"\r") + b"data: next"
    decoder = SSEDecoder()
    events = _feed_all(decoder, _bytewise(data) if bytewise else [data])
    assert [(e.data, e.event) for e in events] == EXPECTED
    assert b"".join(e.raw for e in events) == data[:-len(b"data: next")]


def test_cr_line_ends_yield_the_last_event_at_close() -> None:
    """Bug: SSEDecoder holds a CR at the end of its buffer back as a possible
    half of CRLF, so a CR-only stream's last event (`[DONE]`) comes out only
    when the stream ends (`close()`); without it providers/transport.open_sse
    sees `pending` and fails the stream."""
    decoder = SSEDecoder()
    events = _feed_all(decoder, _bytewise(_with_line_end(STREAM_LF, b"\r")))
    events += decoder.close()
    assert [(e.data, e.event) for e in events] == EXPECTED


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    chunks = [b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]
    events = _feed_all(decoder, chunks)
    assert [e.data for e in events] == ["a", "b"]
    assert b"".join(e.raw for e in events) == b"".join(chunks)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM_LF)), max_size=12),
       st.sampled_from([b"\n", b"\r\n"]))
def test_arbitrary_chunk_boundaries(cuts: list[int], end: bytes) -> None:
    data = _with_line_end(STREAM_LF, end)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    decoder = SSEDecoder()
    events = _feed_all(decoder, chunks)
    assert [(e.data, e.event) for e in events] == EXPECTED
    # each event's raw is its exact wire bytes (a comment belongs to the event after it)
    assert b"".join(e.raw for e in events) == data


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_raw_keeps_exact_bytes(end: bytes) -> None:
    first = _with_line_end(b": hi\nevent: message_start\ndata: {\"a\":1}\n\n", end)
    second = _with_line_end(b"data: line one\ndata: line two\n\n", end)
    events = _feed_all(SSEDecoder(), _bytewise(first + second))
    assert [e.raw for e in events] == [first, second]


def test_comments_only_produce_no_events() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n\n: another\n\n") == []
    assert not decoder.pending


def test_event_without_data_line() -> None:
    events = SSEDecoder().feed(b"event: ping\n\n")
    assert [(e.event, e.data) for e in events] == [("ping", "")]


def test_unknown_fields_are_ignored() -> None:
    events = SSEDecoder().feed(b"id: 7\nretry: 100\nfoo: bar\ndata: x\n\n")
    assert [(e.event, e.data) for e in events] == [(None, "x")]


def test_only_one_leading_space_is_stripped() -> None:
    events = SSEDecoder().feed(b"data:  two spaces\n\n")
    assert events[0].data == " two spaces"


@pytest.mark.parametrize("partial", [
    b"data: {\"trunc",
    b"data: complete line\n",
    b"data: a\ndata: b\n",
])
def test_pending_on_truncated_input(partial: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(partial) == []
    assert decoder.pending


def test_pending_after_event_line_only() -> None:
    """Bug: the decoder dispatches an `event:`-only block as an event (see
    test_event_without_data_line), yet `pending` ignores a buffered `event:`
    line, so a stream cut right after `event: message_stop` looks complete."""
    decoder = SSEDecoder()
    assert decoder.feed(b"event: message_stop\n") == []
    assert decoder.pending


def test_not_pending_after_complete_event() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: x\n\n")
    assert not decoder.pending


@pytest.mark.parametrize(("data", "event"), [
    ("{\"a\":1}", None),
    ("", None),
    ("line one\nline two\n\nafter blank", None),
    (" leading space", "content_block_delta"),
    ("unicode 🙂 ünïcödé", "message_start"),
    ("[DONE]", None),
])
def test_encode_round_trips(data: str, event: str | None) -> None:
    wire = encode(data, event)
    decoder = SSEDecoder()
    events = decoder.feed(wire)
    assert [(e.data, e.event, e.raw) for e in events] == [(data, event, wire)]
    assert not decoder.pending


def test_encode_shape() -> None:
    assert encode("a\nb", "x") == b"event: x\ndata: a\ndata: b\n\n"
    assert encode("{}") == b"data: {}\n\n"


@given(st.lists(st.tuples(st.text(alphabet=st.characters(blacklist_characters="\r",
                                                          blacklist_categories=("Cs",))),
                          st.one_of(st.none(), st.from_regex(r"[a-z_]{1,12}", fullmatch=True))),
                min_size=1, max_size=5))
def test_encoded_sequence_round_trips_bytewise(items: list[tuple[str, str | None]]) -> None:
    wire = b"".join(encode(d, e) for d, e in items)
    events = _feed_all(SSEDecoder(), _bytewise(wire))
    assert [(e.data, e.event) for e in events] == items
