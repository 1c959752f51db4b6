"""Replaying recorded wire transcripts through a codec (shared by the codec tests)."""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.sse import ServerSentEvent, SSEDecoder


def sse_events(data: bytes) -> list[ServerSentEvent]:
    """A whole transcript's events; it must end on an event boundary."""
    decoder = SSEDecoder()
    events = decoder.feed(data)
    assert not decoder.pending
    return events


def decode_stream(decoder: Any, events: list[ServerSentEvent]) -> list[ir.StreamEvent]:
    """Feed every event to a codec's StreamDecoder, then finish it: the IR events."""
    out: list[ir.StreamEvent] = []
    for event in events:
        out += decoder.feed(event)
    out += decoder.finish()
    assert decoder.done
    return out
