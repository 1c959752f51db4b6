"""The upstream client: kept-alive HTTP/1.1 connections per origin, for one event loop.

A connection goes back to the pool only when its answer ended cleanly and the
upstream keeps it alive; any failure, `connection: close`, or an answer left
unread drops it. A pooled connection the upstream closed while idle is noticed
before the request leaves (it is dropped and another taken); one found closed
as the request is about to be written is retried once on a new connection, since
no byte of the request left. A new connection that fails is never retried here
(the pipeline decides: `upstream_errors` marks what is safe to retry).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from afk import tls
from afk.providers.client.connection import Connection, Stale
from afk.providers.client.messages import (
    ConnectFailed,
    ConnectTimeout,
    Exchange,
    ProtocolFailure,
    Request,
    Response,
    TransportError,
)
from afk.providers.client.proxy import ProxiedClient, proxy_for

# Seconds a connection stays pooled idle: httpx's default was 5; upstreams keep theirs
# open longer (a minute and more), and one they close first is noticed before reuse.
KEEPALIVE_EXPIRY = 30.0
Origin = tuple[str, str, int]  # scheme, host, port


_TARGETS: dict[str, tuple[Origin, str, str]] = {}  # by URL: providers call a few, again


def _target(request: Request) -> tuple[Origin, str, str]:
    """The origin, the Host header and the request target of `request.url`."""
    found = _TARGETS.get(request.url)
    if found is None:
        found = _parse_target(request.url)
        if len(_TARGETS) >= 1024:
            _TARGETS.clear()
        _TARGETS[request.url] = found
    return found


def _parse_target(url: str) -> tuple[Origin, str, str]:
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ConnectFailed(f"not an http(s) URL: {url[:80]}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, host, port), authority, target


def _head(request: Request, authority: str, target: str) -> bytes:
    """The request's head: its own `host` header if it has one (a signed request's),
    else the URL's authority; and `accept-encoding: identity`, whatever it says.
    Without that header a server may use any content coding (RFC 9110, 12.5.3), and
    this client decodes none (connection.py refuses a coded answer)."""
    host = authority
    lines = [""]
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered == "host":
            host = value
        elif lowered not in ("content-length", "accept-encoding"):
            lines.append(f"{name}: {value}\r\n")
    lines[0] = (f"{request.method} {target} HTTP/1.1\r\nhost: {host}\r\n"
                "accept-encoding: identity\r\n")
    lines.append(f"content-length: {len(request.content)}\r\n\r\n")
    head = "".join(lines)
    if head.count("\n") != len(lines) + 3 or head.count("\r") != len(lines) + 3:
        raise ProtocolFailure("a request header holds a line break")  # never sent
    try:
        return head.encode("latin-1")
    except UnicodeEncodeError:
        raise ProtocolFailure("a request header is not Latin-1 text") from None


class Client:
    """Connections per (scheme, host, port) for the event loop it is used on (see
    `transport.Upstreams`, which keeps one per loop); at most `max_connections`
    requests in flight, `max_idle` idle connections kept per origin, each for at most
    `keepalive_expiry` seconds idle (a NAT or load balancer may drop an idle connection
    without a word; a request sent on it would wait out the read timeout). An origin
    behind a proxy (`proxies`, see proxy.py) is reached through httpx instead."""

    def __init__(self, *, connect_timeout: float, read_timeout: float,
                 write_timeout: float = 30.0, max_connections: int = 256,
                 max_idle: int = 64, keepalive_expiry: float = KEEPALIVE_EXPIRY,
                 proxies: Mapping[str, str] | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, deque[Connection]] = {}
        self._in_flight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._proxies = proxies or {}
        self._proxied: dict[str, ProxiedClient] = {}
        self.is_closed = False

    # ------------------------------------------------------------ requests
    async def send(self, request: Request) -> Response:
        """The whole answer to `request`."""
        exchange = await self.open(request, streaming=False)
        try:
            content = await exchange.read_all()
        finally:
            await exchange.aclose()
        return Response(exchange.status_code, exchange.headers, content)

    async def post(self, url: str, *, json: Any, headers: dict[str, str]) -> Response:
        return await self.send(Request.post_json(url, json, headers))

    async def open(self, request: Request, *, streaming: bool = True) -> Exchange:
        """Send `request` and return once its status and headers arrived; the body
        is read from the Exchange, which must be closed (`aclose`)."""
        origin, authority, target = _target(request)
        if self._proxies:
            proxy = proxy_for(self._proxies, *origin)
            if proxy is not None:
                return await self._through(proxy).open(request)
        head = _head(request, authority, target)
        await self._enter()
        try:
            connection = self._pooled(origin)
            try:
                if connection is not None:
                    try:
                        await connection.send(head, request.content, streaming=streaming)
                    except Stale:
                        connection = None
                if connection is None:
                    connection = await self._connect(origin)
                    await connection.send(head, request.content, streaming=streaming)
            except BaseException:
                if connection is not None:
                    connection.abort()
                raise
        except BaseException:
            self._leave()
            raise
        return PooledExchange(self, origin, connection)

    async def aclose(self) -> None:
        self.is_closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for proxied in self._proxied.values():
            await proxied.aclose()

    def _through(self, proxy: str) -> ProxiedClient:
        client = self._proxied.get(proxy)
        if client is None:
            client = self._proxied[proxy] = ProxiedClient(
                proxy, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                write_timeout=self.write_timeout)
        return client

    # ------------------------------------------------------------ the pool
    def _pooled(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely closed
            if asyncio.get_running_loop().time() - connection.idle_since > self._expiry:
                connection.close()  # and every one idle longer, left of it
                while idle:
                    idle.pop().close()
                return None
            if connection.idle_and_open():
                return connection
            connection.abort()
        return None

    def _give_back(self, origin: Origin, connection: Connection) -> None:
        if not connection.reusable or connection.closed or self.is_closed:
            connection.abort()
            return
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= self._max_idle:
            idle.popleft().close()
        connection.idle_since = asyncio.get_running_loop().time()
        idle.append(connection)

    async def _connect(self, origin: Origin) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = tls.context() if scheme == "https" else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(loop, read_timeout=self.read_timeout,
                                       write_timeout=self.write_timeout),
                    host, port, ssl=context, server_hostname=host if context else None)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {host}:{port} within "
                                 f"{self.connect_timeout:g} s") from None
        except OSError as exc:  # refused, unresolvable, unreachable, TLS refused
            raise ConnectFailed(f"{type(exc).__name__} connecting to {host}:{port}") from exc
        return connection

    async def _enter(self) -> None:
        """A place among the requests in flight (waiting at most the connect timeout)."""
        if self._in_flight >= self._max_connections:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await waiter
            except BaseException as exc:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken as it gave up: the place goes to the next
                if isinstance(exc, TimeoutError):
                    raise ConnectTimeout("no free upstream connection within "
                                         f"{self.connect_timeout:g} s") from None
                raise
        self._in_flight += 1

    def _leave(self) -> None:
        self._in_flight -= 1
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break


class PooledExchange:
    """An answer on a pooled connection (messages.Exchange): `read` is the connection's
    own. `release` (or `aclose`) ends it: the connection goes back to the pool if the
    body was read to its end, else it is dropped. Idempotent."""

    def __init__(self, client: Client, origin: Origin, connection: Connection) -> None:
        self._client = client
        self._origin = origin
        self._connection: Connection | None = connection
        self.status_code = connection.status
        self.headers = connection.headers
        # The connection's own: no layer per read (the end of the body releases
        # nothing by itself: `aclose` does, which the reader calls at the end).
        self.read: Callable[[float | None], Awaitable[bytes | None]] = connection.read

    async def read_all(self) -> bytes:
        if self._connection is None:
            raise TransportError("the answer was already released")
        return await self._connection.read_all()

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client._give_back(self._origin, connection)
            self._client._leave()

    async def aclose(self) -> None:
        self.release()
