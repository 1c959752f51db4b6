"""Provider-neutral building blocks for fake LLM upstreams (OpenAI now; Anthropic, Gemini later).

* ``sse_event`` / ``json_dumps``: byte-level wire writing.
* ``Recorded``: one request as the fake saw it.
* ``FakeUpstream``: reply queue, request log, stream counters, disconnect-aware helpers.
* ``split_words``: the word-ish chunking used to stream text.
* ``wait_until``: poll a condition from the test thread.

Threading model: the fake's ASGI app runs on the uvicorn thread's event loop while tests
read its state from the main thread. Only the app mutates counters; the reply queue is a
``deque`` (thread-safe append/popleft); so no locks are needed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = [
    "ClientGone",
    "fake_vector",
    "FakeUpstream",
    "Recorded",
    "SSEResponse",
    "hang_until_disconnect",
    "json_dumps",
    "split_words",
    "sse_event",
    "wait_until",
]


def json_dumps(data: Any) -> str:
    """Compact JSON exactly as the providers put it on the wire: no spaces, raw UTF-8."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse_event(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """Encode one server-sent event: optional ``event:`` line, ``data: `` line(s), blank line.

    ``data`` dicts are serialised with ``json_dumps``; strings (e.g. ``"[DONE]"``) are sent
    verbatim. A string containing newlines becomes several ``data:`` lines, as the SSE spec
    requires. The space after ``data:`` is mandatory for google-genai (PROTOCOLS §0).
    """
    payload = data if isinstance(data, str) else json_dumps(data)
    out = f"event: {event}\n" if event is not None else ""
    out += "".join(f"data: {line}\n" for line in payload.split("\n"))
    return (out + "\n").encode("utf-8")


_WORDISH = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")


def split_words(text: str) -> list[str]:
    """Split text into streamable pieces, keeping the spaces: "Hello world!" -> ["Hello", " world", "!"].

    The pieces always concatenate back to ``text``; "" gives no pieces.
    """
    pieces = _WORDISH.findall(text)
    assert "".join(pieces) == text
    return pieces


def wait_until(
    predicate: Callable[[], bool], timeout: float = 2.0, interval: float = 0.005
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(interval)
    return True


async def hang_until_disconnect(request: Request, poll: float = 0.02) -> None:
    """Block until the client goes away.

    Under ASGI spec < 2.4 Starlette's StreamingResponse also cancels the body iterator on
    disconnect (we then leave via CancelledError); polling keeps this working for plain
    (non-streaming) handlers and for servers that speak spec 2.4, where nobody else listens.
    """
    while not await request.is_disconnected():
        await asyncio.sleep(poll)


class SSEResponse(StreamingResponse):
    """``text/event-stream`` response that always finalises its body iterator.

    If the client disconnects while the generator is parked at a ``yield`` (rather than an
    ``await``), Starlette drops it without closing it, and its ``finally`` would only run
    whenever it is garbage-collected. Closing it here makes disconnect accounting prompt.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


@dataclass
class Recorded:
    """One request received by a fake upstream."""

    path: str
    headers: dict[str, str]  # lower-case keys
    body: Any | None  # parsed JSON body; None when empty or not JSON
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""


ReplyT = TypeVar("ReplyT")


class FakeUpstream(Generic[ReplyT]):
    """State shared by every fake provider: scripted replies, request log, stream counters.

    Subclasses provide ``default_reply()`` and build ``self.app``.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: deque[ReplyT] = deque()
        self.streams_started = 0  # streaming responses begun
        self.streams_finished = 0  # streams the fake ran to their scripted end
        self.cancelled = 0  # streams whose client disconnected before the scripted end

    # ----- scripting -------------------------------------------------------------------------
    def default_reply(self) -> ReplyT:
        raise NotImplementedError

    def push(self, *replies: ReplyT) -> None:
        """Queue replies, consumed FIFO, one per generation request. Empty queue -> default."""
        self._replies.extend(replies)

    def next_reply(self) -> ReplyT:
        try:
            return self._replies.popleft()
        except IndexError:
            return self.default_reply()

    def reset(self) -> None:
        """Forget queued replies, recorded requests and counters (for a shared, reused fake)."""
        self._replies.clear()
        self.requests.clear()
        self.streams_started = self.streams_finished = self.cancelled = 0

    # ----- helpers for handlers --------------------------------------------------------------
    async def record(self, request: Request) -> Recorded:
        raw = await request.body()
        body: Any | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        rec = Recorded(
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            method=request.method,
            query=dict(request.query_params),
            raw=raw,
        )
        self.requests.append(rec)
        return rec

    async def tracked(self, events: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
        """Wrap a stream body to maintain ``streams_started/finished`` and ``cancelled``.

        A stream counts as finished when ``events`` is exhausted (including deliberate early
        EOFs and mid-stream errors); anything else — CancelledError from a disconnect, the
        iterator being closed, or ``events`` returning after ``hang_until_disconnect`` — is
        counted as cancelled. ``events`` signals the latter by raising ``ClientGone``.
        """
        self.streams_started += 1
        finished = False
        try:
            async with aclosing(events):
                async for chunk in events:
                    yield chunk
            finished = True
        except ClientGone:
            pass
        finally:
            if finished:
                self.streams_finished += 1
            else:
                self.cancelled += 1


class ClientGone(Exception):
    """Raised inside a stream generator when it noticed the client disconnected."""


def fake_vector(text: str, dimensions: int | None = None) -> list[float]:
    """A fake embedding of `text`: deterministic, and exact in float32 (eighths), so a
    base64-encoded copy decodes to the same numbers."""
    return [((len(text) + k) % 16) / 8 for k in range(dimensions or 8)]
