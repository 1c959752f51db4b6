"""A scripted HTTP upstream on 127.0.0.1 for the upstream client's tests: each
connection is answered by a handler that reads requests and writes raw bytes
(a cut body, a malformed chunk, a stall), counting connections and requests."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from afk.errors import GatewayError
from afk.providers.client import Client, Request
from afk.providers.transport import json_body, upstream_errors


@dataclass
class Server:
    """A scripted upstream on 127.0.0.1: `handler` answers each connection."""

    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)  # request heads, in order


async def read_request(reader: asyncio.StreamReader, server: Server) -> bytes:
    """One request off the connection (its head and body); b"" at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    server.requests.append(head)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


def answer(body: bytes, *, status: str = "200 OK", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{headers}\r\n").encode() + body


@asynccontextmanager
async def serving(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Server],
                                    Awaitable[None]],
                  context: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(url="")

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await handler(reader, writer, server)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=context)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"{'https' if context else 'http'}://localhost:{port}"
    try:
        yield server
    finally:
        listening.close()


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         server: Server) -> None:
    """Answers every request on the connection with a small JSON body."""
    while await read_request(reader, server):
        writer.write(answer(b'{"ok": true}', headers="content-type: application/json\r\n"))
        await writer.drain()


def client(**timeouts: float) -> Client:
    return Client(connect_timeout=timeouts.get("connect", 2.0),
                  read_timeout=timeouts.get("read", 2.0))


async def post(upstream: Client, url: str) -> Any:
    async with upstream_errors("acme"):
        response = await upstream.send(Request.post_json(f"{url}/v1/x", {"q": 1}, {}))
    return json_body(response, "acme")


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def failure(coroutine: Awaitable[Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        run(coroutine)
    assert "acme" in str(caught.value)  # names the provider, never a raw traceback
    return caught.value


