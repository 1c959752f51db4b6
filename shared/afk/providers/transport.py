"""HTTP to the upstreams: the pooled client a gateway's providers share (the lean
one, afk/providers/client), its failures made ours, and a stream's bytes made frames."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from afk.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from afk.providers import Frame, UpstreamStream
from afk.providers.client import (
    Client,
    ConnectFailed,
    ConnectTimeout,
    DeadlineReached,
    Exchange,
    ReadTimeout,
    Request,
    Response,
    TransportError,
    WriteTimeout,
)
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
                 images: ImageFetcher | None = None,
                 proxies: Mapping[str, str] | None = None) -> None:
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._proxies = proxies
        # By the loop itself, weakly: a closed loop's id can be reused by the next
        # loop, and its client (bound to the dead loop) must go with it.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = \
            weakref.WeakKeyDictionary()
        if images is None:
            from afk.providers.images import ImageFetcher

            images = ImageFetcher()
        self.images = images

    def client(self) -> Client:
        """The client for the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = Client(
                connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                max_connections=256, max_idle=64, proxies=self._proxies)
        return client


def gateway_error(exc: TransportError, provider: str) -> UpstreamError:
    """A transport failure in the caller's terms, naming the provider."""
    if isinstance(exc, ConnectTimeout):
        # Never connected: the provider did not see the request, so a retry is safe.
        error: UpstreamError = UpstreamTimeout(f"Timed out connecting to the {provider} "
                                               "upstream.")
        error.retryable = True
    elif isinstance(exc, ConnectFailed):
        error = UpstreamUnreachable(f"Could not connect to the {provider} upstream.")
    elif isinstance(exc, (ReadTimeout, WriteTimeout)):
        error = UpstreamTimeout(f"Timed out waiting for the {provider} upstream.")
    else:
        error = UpstreamError(f"The {provider} upstream connection failed: "
                              f"{type(exc).__name__}.")
    error.__cause__ = exc
    return error


class upstream_errors:  # noqa: N801  (used as `async with upstream_errors(...)`)
    """Transport failures as GatewayErrors naming the provider, never a raw traceback."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if isinstance(exc, TransportError):
            raise gateway_error(exc, self.provider) from exc


def json_body(response: Response, provider: str) -> Any:
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


async def open_sse(client: Client, request: Request, *, provider: str,
                   on_error: Callable[[Response], GatewayError],
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
        exchange = await client.open(request)
    if exchange.status_code >= 300:
        try:
            async with upstream_errors(provider):
                content = await exchange.read_all()
        finally:
            await exchange.aclose()
        raise on_error(Response(exchange.status_code, exchange.headers, content))
    frames = Frames(exchange, provider=provider, decode=decode, finish=finish,
                    framing=framing())
    return UpstreamStream(frames=frames, close=exchange.aclose, stop_at=frames.stop_at)


class Frames:
    """A stream's frames, one batch per network read (what arrived together leaves
    together, so the caller gets one write per read, not per event): an async
    iterator that waits only when nothing has arrived, closing the exchange when
    it ends, fails or is closed."""

    def __init__(self, exchange: Exchange, *, provider: str,
                 decode: Callable[[Any], Frame], finish: Callable[[], list[Any]],
                 framing: Framing) -> None:
        self._exchange, self._provider = exchange, provider
        self._decode, self._finish, self._framing = decode, finish, framing
        self._error: GatewayError | None = None  # raised after the batch it followed
        self._ended = False  # the upstream's body ended
        self._done = False
        self._started = False
        self._until: float | None = None
        self._deadline_error: Callable[[], GatewayError] | None = None

    def stop_at(self, at: float, error: Callable[[], GatewayError]) -> None:
        """Raise `error()` if time.monotonic() passes `at` while waiting for the
        upstream (the loop's clock is time.monotonic: one timer per stream, not a
        cancel scope per read)."""
        self._until, self._deadline_error = at, error

    def __aiter__(self) -> Frames:
        return self

    async def __anext__(self) -> list[Frame]:
        if self._done:
            raise StopAsyncIteration
        try:
            if not self._started:
                # Yield to the loop once: a read of bytes already buffered does not, so
                # an answer that arrived whole would be relayed without one chance
                # for the caller's disconnect (a cancellation) to land first.
                self._started = True
                await asyncio.sleep(0)
            if self._error is not None:
                raise self._error
            while not self._ended:
                try:
                    chunk = await self._exchange.read(self._until)
                except DeadlineReached:
                    assert self._deadline_error is not None
                    raise self._deadline_error() from None
                except TransportError as exc:
                    raise gateway_error(exc, self._provider) from exc
                if chunk is None:
                    self._ended = True
                    batch = self._decoded(self._framing.close())
                else:
                    batch = self._decoded(self._framing.feed(chunk))
                if batch:
                    return batch
                if self._error is not None:
                    raise self._error
            if self._framing.pending:
                raise UpstreamError(f"The {self._provider} upstream stream ended mid-event.")
            self._done = True
            await self._exchange.aclose()
            return [Frame(events=self._finish())]
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        self._done = True
        await self._exchange.aclose()

    def _decoded(self, events: list[Any]) -> list[Frame]:
        """The frames of one read; an error event ends them, kept to be raised after
        the frames decoded before it in the same read went out."""
        batch: list[Frame] = []
        decode = self._decode
        try:
            for event in events:
                batch.append(decode(event))
        except GatewayError as error:
            self._error = error
        return batch
