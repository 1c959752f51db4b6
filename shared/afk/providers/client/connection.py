"""One HTTP/1.1 connection to an upstream: an asyncio Protocol, the answer parsed by
httptools (llhttp, C; Content-Length, chunked and read-until-close bodies).

One request at a time. The Protocol does the work as bytes arrive: it parses, keeps
the body's bytes, and wakes the one waiting reader through a Future, only when
there is something for it (the headers; for a stream, body bytes; the end; a
failure). A stream's reader takes everything that arrived since its last read in
one piece, so one network read (or several, if the reader fell behind) becomes one
batch. No task, cancel scope or async generator per read: the read timeout is one
timer per silence, not per read, and a reader that falls behind pauses the socket.
"""

from __future__ import annotations

import asyncio
import select

import httptools

from afk.providers.client.messages import (
    DeadlineReached,
    Headers,
    ProtocolFailure,
    ReadTimeout,
    TransportError,
    WriteTimeout,
)

HIGH_WATER = 256 * 1024  # body bytes buffered for a stream's reader before pausing the socket
_ONE_WRITE = 64 * 1024  # a body up to this size leaves in the same write as the head


class Stale(TransportError):
    """A kept-alive connection turned out closed before any byte of the request left:
    the request can go out again on another connection."""


class Connection(asyncio.Protocol):
    """A connection and the state of its one request; `reusable` once its answer
    ended cleanly on a connection the upstream keeps alive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, read_timeout: float,
                 write_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0  # loop time it went back to the pool
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._reset(streaming=False)

    def _reset(self, *, streaming: bool) -> None:
        self._streaming = streaming
        self._in_flight = False
        self.status = 0
        self.headers = Headers()
        self._headers_done = False
        self._complete = False
        self._delimited = False  # Content-Length or chunked: an early close is an error
        self._keep_alive = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        self._wake_reader = False
        self._error: TransportError | None = None
        self._last_read = 0.0

    # ----------------------------------------------------------- the caller's side
    def idle_and_open(self) -> bool:
        """Whether this pooled connection can carry a request: open, and nothing to
        read on it (an idle socket that is readable was closed by the upstream, or
        holds bytes nobody asked for)."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        sock = transport.get_extra_info("socket")
        return sock is None or not select.select([sock.fileno()], [], [], 0)[0]

    async def send(self, head: bytes, body: bytes, *, streaming: bool) -> None:
        """Send a request and wait for the answer's status and headers."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise Stale("the connection closed while idle")
        self._reset(streaming=streaming)
        self.reusable = False
        self._in_flight = True
        self._last_read = self._loop.time()
        self._timer = self._loop.call_at(self._last_read + self._read_timeout, self._check_read)
        if len(body) <= _ONE_WRITE:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        if self._writing_paused:
            await self._drain()
        while not self._headers_done:
            await self._wait()

    async def read(self, until: float | None = None) -> bytes | None:
        """The body bytes that arrived since the last read, in one piece (waiting for
        some if there are none, until the loop time `until` at the latest: one timer
        for the answer, set by its first wait); None at the end of the body."""
        while True:
            chunks = self._chunks
            if chunks:
                self._chunks = []
                self._buffered = 0
                if self._reading_paused and self.transport is not None:
                    self._reading_paused = False
                    self._last_read = self._loop.time()  # the silence was ours
                    self.transport.resume_reading()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._complete:
                return None
            if self._error is not None:
                raise self._error
            if until is not None and self._deadline is None:
                self._deadline = self._loop.call_at(until, self._deadline_reached)
            waiter = self._waiter = self._loop.create_future()  # (_wait, inlined: per read)
            try:
                await waiter
            finally:
                self._waiter = None

    async def read_all(self) -> bytes:
        while not self._complete:
            await self._wait()
        chunks, self._chunks = self._chunks, []
        return b"".join(chunks)

    def abort(self) -> None:
        """Drop the connection now (a failure, or an answer not read to its end)."""
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        self._stop_timer()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self._stop_timer()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None and not self._chunks:
            raise self._error

    async def _drain(self) -> None:
        self._drained = self._loop.create_future()
        try:
            await asyncio.wait_for(self._drained, self._write_timeout)
        except TimeoutError:
            self._fail(WriteTimeout("the upstream took no byte of the request"))
            raise WriteTimeout("the upstream took no byte of the request") from None
        finally:
            self._drained = None
        if self._error is not None:
            raise self._error

    # ----------------------------------------------------------- the loop's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._in_flight:
            self._fail(ProtocolFailure("the upstream sent bytes nobody asked for"))
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # a callback's own refusal (on_headers_complete)
            self._fail(refused if isinstance(refused, ProtocolFailure) else
                       ProtocolFailure(f"the upstream's answer is malformed ({exc})"))
            return
        if self._wake_reader:
            self._wake_reader = False
            self._wake()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self._stop_timer()
        if self._in_flight and not self._complete:
            if self._headers_done and not self._delimited:
                self._complete = True  # a body delimited by the end of the connection
            elif self._error is None:
                self._error = ProtocolFailure(
                    "the upstream closed the connection mid-answer" if self._headers_done
                    else "the upstream closed the connection without answering")
        self._wake()
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # ----------------------------------------------------------- httptools callbacks
    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request
            self._keep_alive = False
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in ("content-length", "transfer-encoding"):
            self._delimited = True
        headers = self.headers  # (dict's own methods: the key is lower-case already)
        headers[key] = f"{dict.__getitem__(headers, key)}, {text}" \
            if dict.__contains__(headers, key) else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:  # informational (103 Early Hints): the answer follows
            return
        coding = self.headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("identity", ""):  # asked for identity (pool._head); nothing decodes
            raise ProtocolFailure(f"the upstream's answer is {coding}-encoded, though the "
                                  "request asked for identity")
        self._keep_alive = self._parser.should_keep_alive()
        self._headers_done = True
        self._wake_reader = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        if self._streaming:
            self._wake_reader = True
            self._buffered += len(body)
            if self._buffered > HIGH_WATER and not self._reading_paused \
                    and self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            self.headers = Headers()
            self._delimited = False
            return
        self._complete = True
        self._in_flight = False
        self.reusable = self._keep_alive
        self._wake_reader = True
        self._stop_timer()

    # -----------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error
        self.abort()
        self._wake()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_reached(self) -> None:
        self._deadline = None
        if self._in_flight and not self._complete:
            self._fail(DeadlineReached("the caller's deadline passed"))

    def _check_read(self) -> None:
        """The read timeout: fires once per `read_timeout` of silence, not per read."""
        self._timer = None
        if not self._in_flight or self._complete:
            return
        now = self._loop.time()
        if self._reading_paused:  # our reader is behind: not the upstream's silence
            self._last_read = now
        due = self._last_read + self._read_timeout
        if now + 0.001 >= due:
            self._fail(ReadTimeout(f"no byte from the upstream in {self._read_timeout:g} s"))
        else:
            self._timer = self._loop.call_at(due, self._check_read)
