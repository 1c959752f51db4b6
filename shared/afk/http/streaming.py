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

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace

import anyio
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from afk import sse
from afk.dialects.base import Codec
from afk.errors import GatewayError
from afk.http.common import CompactJSONResponse, compact_json
from afk.pipeline import Admission, Outcome
from afk.records import dataclass

log = logging.getLogger("afk.http")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

Batches = AsyncIterator[list[sse.ServerSentEvent]]


async def sse_bytes(batches: Batches) -> AsyncGenerator[bytes, None]:
    async for batch in batches:
        # A relayed upstream event goes out byte for byte; ours are encoded here.
        # One write per batch: what arrived from upstream together leaves together.
        yield _sse(batch)


async def json_array_bytes(batches: Batches) -> AsyncGenerator[bytes, None]:
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


def _sse(events: list[sse.ServerSentEvent]) -> bytes:
    return b"".join(event.raw or sse.encode(event.data, event.event) for event in events)


@dataclass(frozen=True, slots=True)
class Framing:
    """How one kind of answer goes on the wire: its media type, its keepalive bytes,
    its events as bytes (None: one JSON body), and a failure that arrives after the
    response started, in the caller's dialect."""

    media_type: str
    keepalive: bytes
    encode: Callable[[Batches], AsyncGenerator[bytes, None]] | None
    failure: Callable[[Codec, GatewayError], bytes]


SSE = Framing("text/event-stream", b": keepalive\n\n", sse_bytes,
              lambda codec, error: _sse(codec.render_stream_error(error)))
GEMINI_SSE = replace(SSE, keepalive=b"\n")
JSON_ARRAY = Framing("application/json", b"\n", json_array_bytes,
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

    Two tasks write, one at a time (`_lock`): the answer, and the keepalive, which
    starts the response only once the hold is reserved (errors before that keep
    their status). Like Starlette's StreamingResponse, a client that disconnects
    during a stream cancels it (the pipeline settles for what was used); a buffered
    call runs to its end, as it always has.
    """

    def __init__(self, generate: Generate, *, codec: Codec, stream_framing: Framing,
                 keepalive: float) -> None:
        self._generate = generate
        self._codec = codec
        self._stream_framing = stream_framing
        self._interval = keepalive
        # fast_acquire: an uncontended acquire (every chunk but the rare one racing a
        # keepalive) does not yield to the event loop; a yield per chunk was ~10% of
        # a relayed chunk's CPU (bench/LEVERS.md).
        self._lock = anyio.Lock(fast_acquire=True)
        self._admission: Admission | None = None
        self._admitted = anyio.Event()
        self._framing: Framing | None = None  # set once the response has started
        self._done = False  # nothing more may be written
        self._last_write = time.monotonic()
        self._streaming: anyio.CancelScope | None = None
        self._gone = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._watch, receive)
            if self._interval > 0:
                tasks.start_soon(self._keep_alive, send)
            error = await self._answer(scope, receive, send)
            tasks.cancel_scope.cancel()
        if error is not None:  # nothing was sent: the app's error handlers answer
            raise error

    # ---------------------------------------------------------------- the answer
    def _admit(self, admission: Admission) -> None:
        self._admission = admission
        self._admitted.set()

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> Exception | None:
        try:
            outcome = await self._generate(admitted=self._admit)
        except Exception as error:  # noqa: BLE001 - re-raised, or sent in the dialect
            async with self._lock:
                if self._framing is None:
                    self._done = True
                    return error
                await self._fail(send, error)
            return None
        if outcome.stream is None:
            async with self._lock:
                if self._framing is None:
                    self._done = True
                    await CompactJSONResponse(outcome.body, headers=outcome.headers)(
                        scope, receive, send)
                    return None
                await self._write(send, compact_json(outcome.body), more=False)
            return None
        async with aclosing(outcome.stream):  # settles it even if it is never read
            async with self._lock:
                if self._framing is None:  # else a keepalive started it, with these headers
                    await self._start(send, self._stream_framing, outcome.headers)
            await self._relay(send, outcome.stream)
        return None

    async def _relay(self, send: Send, stream: Batches) -> None:
        framing = self._framing
        assert framing is not None and framing.encode is not None
        with anyio.CancelScope() as self._streaming:
            if self._gone:
                self._streaming.cancel()
            async with aclosing(framing.encode(stream)) as chunks:
                async for chunk in chunks:
                    async with self._lock:
                        await self._write(send, chunk)
            async with self._lock:
                await self._write(send, b"", more=False)

    async def _fail(self, send: Send, error: Exception) -> None:
        """A failure after the response started: the caller's dialect's error, in
        the form the response already has."""
        if not isinstance(error, GatewayError):
            log.error("generation failed after its answer started", exc_info=error)
            error = GatewayError("The gateway failed unexpectedly; nothing was charged "
                                 "for the failed part. Retry the request.")
        assert self._framing is not None
        await self._write(send, self._framing.failure(self._codec, error), more=False)

    # ---------------------------------------------------------------- the wire
    async def _start(self, send: Send, framing: Framing, headers: dict[str, str]) -> None:
        self._framing = framing
        raw = [(k.encode("latin-1"), v.encode("latin-1"))
               for k, v in {**SSE_HEADERS, **headers,
                            "content-type": _content_type(framing)}.items()]
        await send({"type": "http.response.start", "status": 200, "headers": raw})

    async def _write(self, send: Send, data: bytes, *, more: bool = True) -> None:
        message: Message = {"type": "http.response.body", "body": data, "more_body": more}
        if not more:
            self._done = True
        await send(message)
        self._last_write = time.monotonic()

    async def _keep_alive(self, send: Send) -> None:
        while True:
            idle = time.monotonic() - self._last_write
            if idle < self._interval:
                await anyio.sleep(self._interval - idle)
                continue
            await self._admitted.wait()
            async with self._lock:
                if self._done:
                    return
                if time.monotonic() - self._last_write < self._interval:
                    continue
                if self._framing is None:
                    assert self._admission is not None
                    framing = self._stream_framing if self._admission.stream else JSON
                    await self._start(send, framing, self._admission.headers)
                assert self._framing is not None
                await self._write(send, self._framing.keepalive)

    async def _watch(self, receive: Receive) -> None:
        """A disconnect stops a stream being relayed (now, or as soon as it starts)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        if self._streaming is not None:
            self._streaming.cancel()


def _content_type(framing: Framing) -> str:
    return framing.media_type + ("; charset=utf-8" if framing.media_type.startswith("text/")
                                 else "")
