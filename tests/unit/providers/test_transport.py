"""afk.providers.transport on its own, over httpx's MockTransport: httpx failures
become the gateway's errors (retryable only when the provider never saw the
request), a non-2xx answer fails before any frame, and a stream's bytes become
frames one batch per network read, whatever the chunking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from afk.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from afk.providers import Frame
from afk.providers.transport import Upstreams, json_body, open_sse, upstream_errors
from afk.sse import ServerSentEvent

URL = "https://upstream.test/v1/stream"


class Chunks(httpx.AsyncByteStream):
    """A response body arriving in the given network reads, then optionally failing."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.fail is not None:
            raise self.fail

    async def aclose(self) -> None:
        self.closed = True


def _client(status: int, body: Chunks) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(
        lambda request: httpx.Response(status, stream=body)))


def _decode(event: ServerSentEvent) -> Frame:
    if event.event == "error":
        raise UpstreamError(f"upstream said {event.data}")
    return Frame(events=[], raw=event)


class Refused(GatewayError):
    status = 429


async def _open(body: Chunks, *, status: int = 200,
                finish: Callable[[], list[Any]] = list) -> list[list[str]]:
    """The data of each frame, batch by batch, as the pipeline reads them."""
    async with _client(status, body) as client:
        stream = await open_sse(client, client.build_request("POST", URL), provider="acme",
                                on_error=lambda response: Refused(response.text),
                                decode=_decode, finish=finish)
        return [[frame.raw.data if frame.raw else "<end>" for frame in batch]
                async for batch in stream.frames]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.mark.parametrize(("raised", "expected", "retryable"), [
    (httpx.ConnectTimeout("slow connect"), UpstreamTimeout, True),
    (httpx.PoolTimeout("pool"), UpstreamTimeout, True),
    (httpx.ReadTimeout("slow read"), UpstreamTimeout, False),
    (httpx.ConnectError("refused"), UpstreamUnreachable, True),
    (httpx.RemoteProtocolError("peer closed"), UpstreamError, False),
])
def test_httpx_failures_become_the_gateways_errors(raised: Exception, expected: type,
                                                   retryable: bool) -> None:
    async def fail() -> None:
        async with upstream_errors("acme"):
            raise raised

    with pytest.raises(expected) as caught:
        run(fail())
    assert type(caught.value) is expected and caught.value.retryable is retryable
    assert "acme" in str(caught.value) and str(raised) not in str(caught.value)


def test_a_gateway_error_passes_through_as_it_is() -> None:
    async def fail() -> None:
        async with upstream_errors("acme"):
            raise Refused("no")

    with pytest.raises(Refused):
        run(fail())


def test_malformed_json_is_an_upstream_error_naming_the_provider() -> None:
    assert json_body(httpx.Response(200, content=b'{"a": 1}'), "acme") == {"a": 1}
    with pytest.raises(UpstreamError, match="acme upstream answered with malformed JSON"):
        json_body(httpx.Response(200, content=b"<html>"), "acme")


def test_a_non_2xx_answer_fails_before_any_frame_and_is_closed() -> None:
    body = Chunks([b'{"error": "slow down"}'])
    with pytest.raises(Refused, match="slow down"):
        run(_open(body, status=429))
    assert body.closed


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_frames_leave_one_batch_per_read_whatever_the_chunking(split: int) -> None:
    wire = b"data: one\n\ndata: two\n\ndata: three\n\n"
    chunks = [wire[i:i + split] for i in range(0, len(wire), split)]
    batches = run(_open(Chunks(chunks), finish=lambda: ["done"]))
    assert [data for batch in batches for data in batch] == ["one", "two", "three", "<end>"]
    events_per_read = [wire[:i + split].count(b"\n\n") - wire[:i].count(b"\n\n")
                       for i in range(0, len(wire), split)]
    assert [len(b) for b in batches[:-1]] == [n for n in events_per_read if n]


def test_frames_before_an_error_event_in_the_same_read_still_go_out() -> None:
    batches: list[list[str]] = []

    async def read() -> None:
        async with _client(200, Chunks([b"data: one\n\nevent: error\ndata: boom\n\n"])) as c:
            stream = await open_sse(c, c.build_request("POST", URL), provider="acme",
                                    on_error=lambda r: Refused(r.text), decode=_decode,
                                    finish=list)
            async for batch in stream.frames:
                batches.append([f.raw.data for f in batch if f.raw])

    with pytest.raises(UpstreamError, match="upstream said boom"):
        run(read())
    assert batches == [["one"]]


def test_a_stream_cut_mid_event_or_by_the_network_is_an_error() -> None:
    with pytest.raises(UpstreamError, match="ended mid-event"):
        run(_open(Chunks([b"data: one\n\ndata: tw"])))
    body = Chunks([b"data: one\n\n"], fail=httpx.ReadTimeout("stalled"))
    with pytest.raises(UpstreamTimeout, match="Timed out waiting for the acme upstream"):
        run(_open(body))
    assert body.closed


def test_finish_refusing_an_unterminated_stream_fails_it() -> None:
    def finish() -> list[Any]:
        raise UpstreamError("no terminal event")

    with pytest.raises(UpstreamError, match="no terminal event"):
        run(_open(Chunks([b"data: one\n\n"]), finish=finish))


def test_one_client_per_event_loop_reused_until_closed() -> None:
    upstreams = Upstreams(connect_timeout=1.0, read_timeout=2.0)

    async def twice() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return upstreams.client(), upstreams.client()

    async def closed_then_reopened() -> bool:
        client = upstreams.client()
        await client.aclose()
        return upstreams.client() is not client and not upstreams.client().is_closed

    # Two loops alive at once (a dead loop's id may be reused by the next one).
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        (first, again), (other, _) = (loop.run_until_complete(twice()) for loop in loops)
        assert first is again and other is not first
        assert (first.timeout.connect, first.timeout.read) == (1.0, 2.0)
        assert loops[0].run_until_complete(closed_then_reopened())
    finally:
        for loop in loops:
            loop.close()
