"""Answering a generation: the pipeline's outcome framed for the wire, with the
connection kept alive while the model is silent.

API Gateway closes a streamed response that sends nothing for a while: "The stream
is subject to an idle timeout. For Regional or private endpoints, the timeout is 5
minutes. For edge-optimized endpoints, the timeout is 30 seconds" (a Regional API
behind your own CloudFront gets CloudFront's response timeout, 30 s by default)
[https://docs.aws.amazon.com/apigateway/latest/developerguide/response-transfer-mode.html].
A reasoning model may think for minutes before its first token, and a `stream: false`
call sends nothing until the whole answer exists. So once a call's hold is reserved,
whenever nothing was written for `keepalive_seconds` (15 s by default: safe under
either limit), bytes every client ignores go out:

* SSE (Chat, Responses, Messages): a comment line, `: keepalive`.
* Gemini's SSE: a blank line. google-genai (Python) parses a line not starting with
  `data: ` as JSON and fails on a comment, and @google/genai (the Gemini CLI) stalls
  on anything but whitespace before `data: `; both skip blank lines.
* JSON (`stream: false`, Gemini's streamed JSON array): a newline, whitespace JSON
  allows before and between values.

The trade-off: the status line and headers leave with the first keepalive, and a call
that fails after it cannot change its 200. A stream ends with the dialect's in-stream
error event (as any failure after a stream's start does); a `stream: false` answer's
body is the dialect's error object (`{"error": …}`), which the SDKs parse as a
response rather than raise on; and `x-afk-cost` is not sent (the ledger holds the
charge under the call's `x-afk-request-id`). A call answered within the interval is
unchanged: its real status, retry headers and `x-afk-cost`. The alternative, no
keepalive, loses the whole answer of every call silent past the idle limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import replace
from typing import Any, Protocol

import anyio
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from afk import sse
from afk.dialects.base import Codec
from afk.errors import GatewayError
from afk.http.common import SERVER_SEND, CompactJSONResponse, compact_json
from afk.pipeline import Admission, Outcome
from afk.records import dataclass

log = logging.getLogger("afk.http")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

Batch = list[sse.ServerSentEvent]


class EventBytes(Protocol):
    """One stream's batches of events as the bytes of one write each, and its end."""

    def __call__(self, batch: Batch) -> bytes: ...

    def end(self) -> bytes: ...


class SSEBytes:
    """SSE: a relayed upstream event goes out byte for byte; ours are encoded here."""

    __slots__ = ()

    def __call__(self, batch: Batch) -> bytes:
        if len(batch) == 1:  # one event per upstream read: the common case
            event = batch[0]
            return event.raw or sse.encode(event.data, event.event)
        return _sse(batch)

    def end(self) -> bytes:
        return b""


class JSONArrayBytes:
    """Gemini's `streamGenerateContent` without `alt=sse`: one JSON array, sent
    progressively, elements separated by a comma line."""

    __slots__ = ("_first",)

    def __init__(self) -> None:
        self._first = True

    def __call__(self, batch: Batch) -> bytes:
        parts = []
        for event in batch:
            parts.append((b"[" if self._first else b"\n,\r\n") + event.data.encode())
            self._first = False
        return b"".join(parts)

    def end(self) -> bytes:
        return b"[]" if self._first else b"]"


def _sse(events: Batch) -> bytes:
    return b"".join([event.raw or sse.encode(event.data, event.event) for event in events])


@dataclass(frozen=True, slots=True)
class Framing:
    """How one kind of answer goes on the wire: its media type, its keepalive bytes,
    how a stream's events become bytes (None: one JSON body), and a failure that
    arrives after the response started, in the caller's dialect."""

    media_type: str
    keepalive: bytes
    encoder: Callable[[], EventBytes] | None
    failure: Callable[[Codec, GatewayError], bytes]


SSE = Framing("text/event-stream", b": keepalive\n\n", SSEBytes,
              lambda codec, error: _sse(codec.render_stream_error(error)))
GEMINI_SSE = replace(SSE, keepalive=b"\n")
JSON_ARRAY = Framing("application/json", b"\n", JSONArrayBytes,
                     lambda codec, error: b"[" + compact_json(codec.render_error(error)) + b"]")
JSON = Framing("application/json", b"\n", None,
               lambda codec, error: compact_json(codec.render_error(error)))

Generate = Callable[..., Awaitable[Outcome]]  # pipeline.generate, all bound but `admitted`


def answer(request: Request, codec: Codec, generate: Generate, *,
           stream_framing: Framing = SSE) -> Answer:
    """The response to a generation route: `generate` runs when it is sent."""
    return Answer(generate, codec=codec, stream_framing=stream_framing,
                  keepalive=request.app.state.gateway.settings.keepalive_seconds)


class Answer:
    """An ASGI response that runs the generation, answers as soon as the outcome
    exists, and keeps the connection alive while it does not (see the module doc).

    Writes happen one at a time: the answer's, and a keepalive's (`_lock`; a
    stream's batches mark theirs, `_sending`), which starts the response only once
    the hold is reserved (errors before that keep their status). The keepalive is
    a timer, and a task only when one is due; the watch for a disconnect is a task
    only while a stream is relayed: a buffered call costs no task of its own
    (bench/LEVERS.md). A stream is relayed by a task of its own, its body messages
    sent with the server's `send` (apps.GatewayApp). Like Starlette's
    StreamingResponse, a client that disconnects during a stream cancels it (the
    pipeline settles for what was used); a buffered call runs to its end, as it
    always has.
    """

    def __init__(self, generate: Generate, *, codec: Codec, stream_framing: Framing,
                 keepalive: float) -> None:
        self._generate = generate
        self._codec = codec
        self._stream_framing = stream_framing
        self._interval = keepalive
        # asyncio's: an uncontended acquire (every chunk but the rare one racing a
        # keepalive) neither yields to the loop nor checks for cancellation, ~1 µs
        # against anyio's ~10 (bench/LEVERS.md).
        self._lock = asyncio.Lock()
        self._admission: Admission | None = None
        self._framing: Framing | None = None  # set once the response has started
        self._done = False  # nothing more may be written
        self._last_write = time.monotonic()
        self._streaming: anyio.CancelScope | None = None  # the pump's, while relaying
        self._sending = False  # the pump is writing a batch (without the lock)
        self._gone = False
        self._send: Send | None = None
        self._send_body: Send | None = None  # body messages' `send`, once started
        self._timer: asyncio.TimerHandle | None = None
        self._overdue = False  # a keepalive is due, waiting for the hold
        self._tasks: list[asyncio.Task[None]] = []  # keepalive writes, the watch
        self._closed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        # Body messages skip the wrappers that act on the start only (apps.GatewayApp).
        self._send_body = scope.get(SERVER_SEND, send)
        if self._interval > 0:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._due)
        try:
            error = await self._answer(scope, receive, send)
        finally:
            await self._close()
        if error is not None:  # nothing was sent: the app's error handlers answer
            raise error

    async def _close(self) -> None:
        """Stop the keepalive and the watch; a keepalive write's failure is the call's."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if not self._tasks:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    # ---------------------------------------------------------------- the answer
    def _admit(self, admission: Admission) -> None:
        self._admission = admission
        if self._overdue:
            self._spawn(self._keep_alive())

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> Exception | None:
        try:
            outcome = await self._generate(admitted=self._admit)
        except Exception as error:  # noqa: BLE001 - re-raised, or sent in the dialect
            async with self._lock:
                if self._framing is None:
                    self._done = True
                    return error
                await self._fail(error)
            return None
        if outcome.stream is None:
            async with self._lock:
                if self._framing is None:
                    self._done = True
                    await CompactJSONResponse(outcome.body, headers=outcome.headers)(
                        scope, receive, send)
                    return None
                await self._write(compact_json(outcome.body), more=False)
            return None
        async with aclosing(outcome.stream):  # settles it even if it is never read
            async with self._lock:
                if self._framing is None:  # else a keepalive started it, with these headers
                    await self._start(send, self._stream_framing, outcome.headers)
            await self._relay(receive, outcome.stream)
        return None

    async def _relay(self, receive: Receive, stream: AsyncIterator[Batch]) -> None:
        """The stream's batches are written by a task of their own (`_pump_batches`):
        each upstream read wakes that task alone, not the ~20 coroutines of the ASGI
        stack this one runs in (bench/LEVERS.md). Cancelling this task cancels it."""
        self._spawn(self._watch(receive))  # first: its first look precedes the first read
        await asyncio.get_running_loop().create_task(self._pump_batches(stream))

    async def _pump_batches(self, stream: AsyncIterator[Batch]) -> None:
        """A disconnect cancels the relay's scope (anyio's: the shielded settlement
        and upstream close finish first, as they would in the ASGI task)."""
        framing, send, lock = self._framing, self._send_body, self._lock
        assert framing is not None and framing.encoder is not None and send is not None
        encode = framing.encoder()
        with anyio.CancelScope() as self._streaming:
            if self._gone:  # the watch's first look: the caller left before the first read
                return
            # One write per batch: what arrived from upstream together leaves together.
            # A keepalive writes holding the lock; the pump's writes are marked instead
            # (`_sending`: a keepalive finding one under way skips, the connection is
            # not idle), the lock taken only to wait for a keepalive being written.
            async for batch in stream:
                if self._gone:  # and the upstream's bytes came without a wait to cancel
                    return
                data = encode(batch)
                if lock.locked():
                    async with lock:
                        await self._write(data)
                    continue
                self._sending = True
                try:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                finally:
                    self._sending = False
                self._last_write = time.monotonic()
            async with lock:
                await self._write(encode.end(), more=False)

    async def _fail(self, error: Exception) -> None:
        """A failure after the response started: the caller's dialect's error, in
        the form the response already has."""
        if not isinstance(error, GatewayError):
            log.error("generation failed after its answer started", exc_info=error)
            error = GatewayError("The gateway failed unexpectedly; nothing was charged "
                                 "for the failed part. Retry the request.")
        assert self._framing is not None
        await self._write(self._framing.failure(self._codec, error), more=False)

    # ---------------------------------------------------------------- the wire
    async def _start(self, send: Send, framing: Framing, headers: dict[str, str]) -> None:
        self._framing = framing
        raw = [(k.encode("latin-1"), v.encode("latin-1"))
               for k, v in {**SSE_HEADERS, **headers,
                            "content-type": _content_type(framing)}.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})

    async def _write(self, data: bytes, *, more: bool = True) -> None:
        message: Message = {"type": "http.response.body", "body": data, "more_body": more}
        if not more:
            self._done = True
        assert self._send_body is not None
        await self._send_body(message)
        self._last_write = time.monotonic()

    def _due(self) -> None:
        """The keepalive timer: after an interval with nothing written, a keepalive
        (once the hold is reserved); else a look again when that could be."""
        self._timer = None
        if self._done or self._closed:
            return
        # A batch being written (waiting for a slow caller to read) is not silence.
        idle = 0.0 if self._sending else time.monotonic() - self._last_write
        if idle < self._interval:
            self._timer = asyncio.get_running_loop().call_later(self._interval - idle, self._due)
        elif self._admission is None:
            self._overdue = True  # `_admit` sends it
        else:
            self._spawn(self._keep_alive())

    async def _keep_alive(self) -> None:
        self._overdue = False
        send = self._send
        assert send is not None
        async with self._lock:
            if not self._done and not self._sending \
                    and time.monotonic() - self._last_write >= self._interval:
                if self._framing is None:
                    assert self._admission is not None
                    framing = self._stream_framing if self._admission.stream else JSON
                    await self._start(send, framing, self._admission.headers)
                assert self._framing is not None
                await self._write(self._framing.keepalive)
        self._tasks.remove(asyncio.current_task())  # type: ignore[arg-type]
        self._due()

    async def _watch(self, receive: Receive) -> None:
        """A disconnect stops the stream being relayed."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        if self._streaming is not None:
            self._streaming.cancel()


def _content_type(framing: Framing) -> str:
    return framing.media_type + ("; charset=utf-8" if framing.media_type.startswith("text/")
                                 else "")
