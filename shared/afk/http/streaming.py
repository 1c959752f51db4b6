"""Framing the pipeline's event streams for the wire, and rendering outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from afk import sse
from afk.http.common import CompactJSONResponse
from afk.pipeline import Outcome

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def sse_bytes(batches: AsyncIterator[list[sse.ServerSentEvent]]) -> AsyncIterator[bytes]:
    async for batch in batches:
        # A relayed upstream event goes out byte for byte; ours are encoded here.
        # One write per batch: what arrived from upstream together leaves together.
        yield b"".join(event.raw or sse.encode(event.data, event.event) for event in batch)


async def json_array_bytes(batches: AsyncIterator[list[sse.ServerSentEvent]]
                           ) -> AsyncIterator[bytes]:
    """Gemini's `streamGenerateContent` without `alt=sse`: one JSON array, sent
    progressively, elements separated by a comma line."""
    first = True
    async for batch in batches:
        parts = []
        for event in batch:
            parts.append((b"[" if first else b"\n,\r\n") + event.data.encode())
            first = False
        yield b"".join(parts)
    yield b"]" if not first else b"[]"


def respond(outcome: Outcome, *, json_array: bool = False) -> Response:
    if outcome.stream is None:
        return CompactJSONResponse(outcome.body, headers=outcome.headers)
    if json_array:
        return StreamingResponse(json_array_bytes(outcome.stream),
                                 media_type="application/json",
                                 headers={**SSE_HEADERS, **outcome.headers})
    return StreamingResponse(sse_bytes(outcome.stream), media_type="text/event-stream",
                             headers={**SSE_HEADERS, **outcome.headers})
