"""The floor: the least CPU any Python asyncio proxy spends relaying a call.

`python bench/floor_proxy.py PORT UPSTREAM_PORT`. Raw asyncio Protocols on both
sides, httptools (C) parsing both ways, pooled kept-alive upstream connections:
the request body forwarded as is, the answer relayed as it arrives (a stream one
chunked write per network read), no authentication, no billing, no translation,
no JSON. Not a server anyone should run: the bench measures it beside the gateway
in the same run, so "CPU per relayed chunk" has a floor to be read against (what
the kernel and the event loop cost per wake-up on this machine). It runs on uvloop,
the event loop the gateway runs on (afk/serve.py): the same relay on asyncio's own
loop costs ~15-25 µs more per lone event here.
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class _Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream; relays one answer at a time."""

    def __init__(self, pool: list[_Upstream]) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.down: asyncio.Transport | None = None
        self.headers: list[bytes] = []
        self.open = True
        self.content_type = b"application/json"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False

    def send(self, request: bytes, down: asyncio.Transport) -> None:
        self.down = down
        self.transport.write(request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        assert self.down is not None
        self.down.write(b"HTTP/1.1 %d OK\r\ntransfer-encoding: chunked\r\n"
                        b"content-type: %s\r\n\r\n"
                        % (self.parser.get_status_code(), self.content_type))

    def on_body(self, body: bytes) -> None:
        assert self.down is not None
        self.down.write(b"%x\r\n%s\r\n" % (len(body), body))

    def on_message_complete(self) -> None:
        assert self.down is not None
        self.down.write(b"0\r\n\r\n")
        self.down = None
        self.pool.append(self)


class _Server(asyncio.Protocol):
    def __init__(self, upstream: tuple[str, int], pool: list[_Upstream]) -> None:
        self.upstream, self.pool = upstream, pool
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        request = (b"POST %s HTTP/1.1\r\nhost: upstream\r\ncontent-type: application/json\r\n"
                   b"content-length: %d\r\n\r\n%s" % (self.url, len(body), body))
        asyncio.get_running_loop().create_task(self.relay(request))

    async def relay(self, request: bytes) -> None:
        while self.pool and not self.pool[-1].open:
            self.pool.pop()
        if self.pool:
            upstream = self.pool.pop()
        else:
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: _Upstream(self.pool), *self.upstream)
        upstream.send(request, self.transport)


async def main(port: int, upstream_port: int) -> None:
    pool: list[_Upstream] = []
    server = await asyncio.get_running_loop().create_server(
        lambda: _Server(("127.0.0.1", upstream_port), pool), "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
