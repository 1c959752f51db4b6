"""afk.providers.transport: an upstream's error answer in the provider's terms, a
stream's bytes becoming frames one batch per network read (whatever the
chunking; an error event after the frames before it), a stream's failures, and
one client per event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from afk import ir
from afk.catalog import Catalog
from afk.errors import GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from afk.providers import Call, Frame
from afk.providers.client import Client, Request
from afk.providers.client.connection import HIGH_WATER
from afk.providers.openai import OpenAIProvider
from afk.providers.transport import Frames, Upstreams, open_sse
from afk.settings import Settings, Upstream
from afk.sse import ServerSentEvent, SSEDecoder
from tests.support.scripted_upstream import (
    Server,
    answer,
    client,
    failure,
    post,
    read_request,
    run,
    serving,
)


def test_an_error_status_with_a_json_body_maps_as_the_provider_says() -> None:
    body = (b'{"error": {"message": "Rate limit reached for org-secret", '
            b'"type": "requests", "code": "rate_limit_exceeded"}}')

    async def limited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: Server) -> None:
        while await read_request(reader, server):
            writer.write(answer(body, status="429 Too Many Requests",
                                headers="retry-after: 2\r\nx-request-id: req_1\r\n"))
            await writer.drain()

    model = next(m for m in Catalog.load() if m.provider == "openai" and m.kind == "chat")
    request = ir.Request(model=model.id, messages=[
        ir.Message(role="user", content=[ir.Text(text="Hi")])])

    async def main() -> None:
        async with serving(limited) as server:
            provider = OpenAIProvider(Settings(upstreams={"openai": Upstream(server.url, "k")}))
            await provider.complete(Call(request=request, model=model))

    with pytest.raises(RateLimited) as caught:
        run(main())
    error = caught.value
    assert error.status == 429 and error.retryable and error.retry_after == 2.0
    assert "openai upstream" in error.message and "org-secret" not in error.message


# ------------------------------------------------------------------ streams
def _decode(event: ServerSentEvent) -> Frame:
    if event.event == "error":
        raise UpstreamError(f"upstream said {event.data}")
    return Frame(events=[], raw=event)


class Refused(GatewayError):
    status = 429


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                server: Server) -> None:
    """One event, then silence."""
    await read_request(reader, server)
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                 b"b\r\ndata: one\n\n\r\n")
    await asyncio.sleep(5)


async def _read_stalled(seen: list[str], *, read: float, deadline: float | None) -> None:
    async with serving(stall) as server:
        stream = await open_sse(client(read=read), Request("POST", f"{server.url}/s"),
                                provider="acme", on_error=lambda r: Refused(r.text),
                                decode=_decode, finish=list)
        if deadline is not None and stream.stop_at is not None:
            stream.stop_at(time.monotonic() + deadline, lambda: OutOfTime("acme: out of time"))
        async for batch in stream.frames:
            seen.extend(f.raw.data for f in batch if f.raw)


class OutOfTime(GatewayError):
    status = 504


def test_a_stream_stalling_after_its_first_events_times_out() -> None:
    seen: list[str] = []
    error = failure(_read_stalled(seen, read=0.3, deadline=None))
    assert type(error) is UpstreamTimeout and seen == ["one"]


def test_a_stream_stops_at_the_callers_deadline_with_its_error() -> None:
    seen: list[str] = []
    error = failure(_read_stalled(seen, read=5, deadline=0.3))
    assert type(error) is OutOfTime and seen == ["one"]


def test_a_non_2xx_stream_answer_fails_before_any_frame() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        while await read_request(reader, server):
            writer.write(answer(b'{"error": "slow down"}', status="429 Too Many"))
            await writer.drain()

    async def main() -> Server:
        upstream = client()
        async with serving(refuse) as server:
            with pytest.raises(Refused, match="slow down"):
                await open_sse(upstream, Request("POST", f"{server.url}/s"), provider="acme",
                               on_error=lambda r: Refused(r.text), decode=_decode, finish=list)
            await post(upstream, server.url)  # the error's connection was read whole: reused
        return server

    assert run(main()).connections == 1


class Reads:
    """An exchange whose body arrives in the given network reads."""

    status_code = 200

    def __init__(self, reads: list[bytes]) -> None:
        self.reads, self.closed = list(reads), False

    async def read(self, until: float | None = None) -> bytes | None:
        return self.reads.pop(0) if self.reads else None

    async def read_all(self) -> bytes:
        raise AssertionError("a stream is read by reads")

    async def aclose(self) -> None:
        self.closed = True


async def _batches(reads: Reads, finish: Callable[[], list[Any]] = list) -> list[list[str]]:
    frames = Frames(reads, provider="acme", decode=_decode, finish=finish,  # type: ignore[arg-type]
                    framing=SSEDecoder())
    return [[f.raw.data if f.raw else "<end>" for f in batch] async for batch in frames]


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_frames_leave_one_batch_per_read_whatever_the_chunking(split: int) -> None:
    wire = b"data: one\n\ndata: two\n\ndata: three\n\n"
    reads = Reads([wire[i:i + split] for i in range(0, len(wire), split)])
    batches = run(_batches(reads, finish=lambda: ["done"]))
    assert [data for batch in batches for data in batch] == ["one", "two", "three", "<end>"]
    events_per_read = [wire[:i + split].count(b"\n\n") - wire[:i].count(b"\n\n")
                       for i in range(0, len(wire), split)]
    assert [len(b) for b in batches[:-1]] == [n for n in events_per_read if n]
    assert reads.closed


def test_frames_before_an_error_event_in_the_same_read_still_go_out() -> None:
    batches: list[list[str]] = []

    async def read() -> None:
        frames = Frames(Reads([b"data: one\n\nevent: error\ndata: boom\n\n"]),  # type: ignore[arg-type]
                        provider="acme", decode=_decode, finish=list, framing=SSEDecoder())
        async for batch in frames:
            batches.append([f.raw.data for f in batch if f.raw])

    with pytest.raises(UpstreamError, match="upstream said boom"):
        run(read())
    assert batches == [["one"]]


def test_a_stream_cut_mid_event_or_unterminated_is_an_error() -> None:
    with pytest.raises(UpstreamError, match="ended mid-event"):
        run(_batches(Reads([b"data: one\n\ndata: tw"])))

    def finish() -> list[Any]:
        raise UpstreamError("no terminal event")

    reads = Reads([b"data: one\n\n"])
    with pytest.raises(UpstreamError, match="no terminal event"):
        run(_batches(reads, finish=finish))
    assert reads.closed


def test_a_reader_that_falls_behind_pauses_the_upstream_and_gets_every_event() -> None:
    """Flow control: bytes the reader has not taken stop being read from the socket
    past HIGH_WATER (the upstream waits in TCP), so what is held stays bounded."""
    events = [b"data: %06d %s\n\n" % (i, b"x" * 1000) for i in range(3000)]  # ~3 MB

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"connection: close\r\n\r\n" + b"".join(events))
        await writer.drain()

    async def main() -> tuple[list[str], int]:
        async with serving(flood) as server:
            stream = await open_sse(client(), Request("POST", f"{server.url}/s"),
                                    provider="acme", on_error=lambda r: Refused(r.text),
                                    decode=_decode, finish=list)
            seen: list[str] = []
            largest = 0
            async for batch in stream.frames:
                seen.extend(f.raw.data[:6] for f in batch if f.raw)
                largest = max(largest, sum(len(f.raw.raw) for f in batch if f.raw))
                await asyncio.sleep(0.002)  # a slow caller
            return seen, largest

    seen, largest = run(main())
    assert seen == [f"{i:06d}" for i in range(3000)]
    # At most one socket read (asyncio reads 256 KiB at a time) past the mark, and the
    # event the read before left unfinished.
    assert largest <= HIGH_WATER + 256 * 1024 + len(events[0])


def test_a_stream_left_unread_drops_its_connection() -> None:
    async def streaming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        server: Server) -> None:
        while await read_request(reader, server):
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"b\r\ndata: one\n\n\r\n")
            await writer.drain()

    async def main() -> Server:
        upstream = client()
        async with serving(streaming) as server:
            for _ in range(2):
                stream = await open_sse(upstream, Request("POST", f"{server.url}/s"),
                                        provider="acme", on_error=lambda r: Refused(r.text),
                                        decode=_decode, finish=list)
                assert [f.raw.data for f in await anext(stream.frames) if f.raw] == ["one"]
                await stream.aclose()
        return server

    assert run(main()).connections == 2


# ------------------------------------------------------------------ per event loop
def test_one_client_per_event_loop_reused_until_closed() -> None:
    upstreams = Upstreams(connect_timeout=1.0, read_timeout=2.0)

    async def twice() -> tuple[Client, Client]:
        return upstreams.client(), upstreams.client()

    async def closed_then_reopened() -> bool:
        first = upstreams.client()
        await first.aclose()
        return upstreams.client() is not first and not upstreams.client().is_closed

    # Two loops alive at once (a dead loop's id may be reused by the next one).
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        (first, again), (other, _) = (loop.run_until_complete(twice()) for loop in loops)
        assert first is again and other is not first
        assert (first.connect_timeout, first.read_timeout) == (1.0, 2.0)
        assert loops[0].run_until_complete(closed_then_reopened())
    finally:
        for loop in loops:
            loop.close()
