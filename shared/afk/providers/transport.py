"""HTTP to the upstreams: the pooled client a gateway's providers share, httpx errors
made ours."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from afk import tls
from afk.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from afk.providers import Frame, UpstreamStream
from afk.sse import SSEDecoder

if TYPE_CHECKING:
    from afk.providers.images import ImageFetcher

class Upstreams:
    """What the providers of one gateway share (`Gateway.upstreams`, built once per
    process): the pooled HTTP client, kept for every warm invocation after the
    first (connection reuse), and the fetcher of image URLs for the providers that
    send images inline. A client belongs to the event loop it first ran on: a
    Lambda environment runs one loop for its life; a process that runs loops in
    turn (tests, tools) gets a client per loop."""

    def __init__(self, *, connect_timeout: float, read_timeout: float,
                 images: ImageFetcher | None = None) -> None:
        self._timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0,
                                      pool=connect_timeout)
        # By the loop itself, weakly: a closed loop's id can be reused by the next
        # loop, and its client (bound to the dead loop) must go with it.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 httpx.AsyncClient] = weakref.WeakKeyDictionary()
        if images is None:
            from afk.providers.images import ImageFetcher

            images = ImageFetcher()
        self.images = images

    def client(self) -> httpx.AsyncClient:
        """The client for the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                verify=tls.context())
        return client


@asynccontextmanager
async def upstream_errors(provider: str) -> AsyncIterator[None]:
    """httpx failures as GatewayErrors naming the provider, never a raw traceback."""
    try:
        yield
    except GatewayError:
        raise
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Never connected: the provider did not see the request, so a retry is safe.
        error = UpstreamTimeout(f"Timed out connecting to the {provider} upstream.")
        error.retryable = True
        raise error from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"Timed out waiting for the {provider} upstream.") from exc
    except httpx.ConnectError as exc:
        raise UpstreamUnreachable(f"Could not connect to the {provider} upstream.") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"The {provider} upstream connection failed: "
                            f"{type(exc).__name__}.") from exc


def json_body(response: httpx.Response, provider: str) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise UpstreamError(f"The {provider} upstream answered with malformed JSON.") from None


class Framing(Protocol):
    """Bytes in, the upstream's events out (SSE, or AWS event-stream messages)."""

    @property
    def pending(self) -> bool: ...

    def feed(self, chunk: bytes) -> list[Any]: ...

    def close(self) -> list[Any]: ...


async def open_sse(client: httpx.AsyncClient, request: httpx.Request, *, provider: str,
                   on_error: Callable[[httpx.Response], GatewayError],
                   decode: Callable[[Any], Frame],
                   finish: Callable[[], list[Any]],
                   framing: Callable[[], Framing] = SSEDecoder) -> UpstreamStream:
    """Send `request`, check its status, and return its events as Frames (framed by
    `framing`: SSE unless the upstream says otherwise).

    A non-2xx answer raises before any byte reaches the caller, so the caller
    gets a real HTTP error status. `finish` is called at upstream EOF and must
    raise if the stream ended before its terminal event.
    """
    async with upstream_errors(provider):
        response = await client.send(request, stream=True)
    if response.status_code >= 300:
        try:
            async with upstream_errors(provider):
                await response.aread()
        finally:
            await response.aclose()
        raise on_error(response)

    def decoded(events: list[Any]) -> tuple[list[Frame], GatewayError | None]:
        """The frames of one network read, as one batch (so the caller gets one
        write per read, not per event), and the error event that ended it, if any:
        frames decoded before an error in the same read still go out before it."""
        batch: list[Frame] = []
        try:
            for event in events:
                batch.append(decode(event))
        except GatewayError as error:
            return batch, error
        return batch, None

    async def frames() -> AsyncIterator[list[Frame]]:
        decoder = framing()
        try:
            async with upstream_errors(provider):
                async for chunk in response.aiter_bytes():
                    batch, error = decoded(decoder.feed(chunk))
                    if batch:
                        yield batch
                    if error is not None:
                        raise error
                batch, error = decoded(decoder.close())
                if batch:
                    yield batch
                if error is not None:
                    raise error
            if decoder.pending:
                raise UpstreamError(f"The {provider} upstream stream ended mid-event.")
            yield [Frame(events=finish())]
        finally:
            await response.aclose()

    return UpstreamStream(frames=frames(), close=response.aclose)
