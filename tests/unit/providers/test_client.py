"""afk/providers/client against real local sockets: how an upstream that refuses,
stalls, cuts or garbles an answer reaches the caller (retryable only when the
provider never saw the request), kept-alive connections (reused; dropped when the
upstream closes them or says so), TLS with the process's context, and proxies."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from afk import tls
from afk.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from afk.providers import Frame
from afk.providers.client import Client, Request
from afk.providers.client.proxy import proxy_for
from afk.providers.transport import open_sse, upstream_errors
from afk.settings import Settings
from tests.support.scripted_upstream import (
    Server,
    answer,
    client,
    failure,
    keep_answering,
    post,
    read_request,
    run,
    serving,
)


# ------------------------------------------------------------------ connecting
def test_a_refused_connection_is_unreachable_and_retryable() -> None:
    with socket.socket() as bound:  # bound, never listening: the kernel refuses
        bound.bind(("127.0.0.1", 0))
        error = failure(post(client(), f"http://127.0.0.1:{bound.getsockname()[1]}"))
    assert type(error) is UpstreamUnreachable and error.retryable


def test_a_host_that_does_not_resolve_is_unreachable() -> None:
    error = failure(post(client(), "http://upstream.invalid"))
    assert type(error) is UpstreamUnreachable and error.retryable


def test_a_connect_timeout_is_a_retryable_timeout() -> None:
    with socket.socket() as full:  # its one-place accept queue taken: SYNs are dropped
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        waiting = [socket.socket() for _ in range(3)]
        for sock in waiting:
            sock.setblocking(False)
            sock.connect_ex(full.getsockname())
        try:
            error = failure(post(client(connect=0.3), f"http://127.0.0.1:{full.getsockname()[1]}"))
        finally:
            for sock in waiting:
                sock.close()
    assert type(error) is UpstreamTimeout and error.retryable
    assert "connecting" in str(error)


# ------------------------------------------------------------------ answers
def test_an_upstream_stalling_mid_body_is_a_timeout_not_retried() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial")
        await asyncio.sleep(5)

    async def main() -> None:
        async with serving(stall) as server:
            await post(client(read=0.3), server.url)

    error = failure(main())
    assert type(error) is UpstreamTimeout and not error.retryable
    assert "waiting for the acme upstream" in str(error)


@pytest.mark.parametrize(("wire", "why"), [
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", "cut"),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n", "malformed"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}", "cut"),
    (b"HTTP/1.1 200 OK\r\n", "cut"),
    (b"", "cut"),
    (b"NOT HTTP AT ALL\r\n\r\n", "malformed"),
])
def test_a_cut_or_malformed_answer_is_an_upstream_error(wire: bytes, why: str) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  server: Server) -> None:
        await read_request(reader, server)
        writer.write(wire)
        await writer.drain()

    async def main() -> None:
        async with serving(cut) as server:
            await post(client(), server.url)

    error = failure(main())
    assert type(error) is UpstreamError and not error.retryable


def test_the_upstream_is_asked_for_an_uncoded_answer() -> None:
    """Without Accept-Encoding a server may compress (RFC 9110, 12.5.3); the client
    decodes nothing, so every request asks for identity, once, whatever it carried."""
    async def main() -> list[bytes]:
        async with serving(keep_answering) as server:
            upstream = client()
            await upstream.send(Request("POST", f"{server.url}/x", {"Accept-Encoding": "gzip"}))
            await upstream.send(Request.post_json(f"{server.url}/y", {"q": 1}, {}))
            return server.requests

    for head in run(main()):
        codings = [line for line in head.lower().split(b"\r\n")
                   if line.startswith(b"accept-encoding:")]
        assert codings == [b"accept-encoding: identity"]


def test_a_compressed_answer_is_refused_as_an_upstream_error() -> None:
    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: Server) -> None:
        await read_request(reader, server)
        writer.write(answer(gzip.compress(b'{"ok": true}'),
                            headers="content-encoding: gzip\r\n"))
        await writer.drain()

    async def main() -> None:
        async with serving(gzipped) as server:
            await post(client(), server.url)

    error = failure(main())
    assert type(error) is UpstreamError and not error.retryable
    assert "gzip-encoded" in str(error.__cause__)  # what the operator's log says


def test_an_informational_answer_before_the_real_one_is_skipped() -> None:
    async def hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
                     + answer(b'{"after": "hints"}', headers="x-request-id: r1\r\n"))
        await writer.drain()

    async def main() -> tuple[int, Any, Any]:
        async with serving(hints) as server:
            response = await client().send(Request("POST", f"{server.url}/x"))
            return response.status_code, response.json(), response.headers.get("X-Request-ID")

    assert run(main()) == (200, {"after": "hints"}, "r1")


def test_requests_past_the_pool_bound_wait_for_a_place_at_most_the_connect_timeout() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   server: Server) -> None:
        while await read_request(reader, server):
            await release.wait()
            writer.write(answer(b'{"ok": true}'))
            await writer.drain()

    async def main() -> tuple[list[Any], GatewayError]:
        upstream = Client(connect_timeout=0.3, read_timeout=5, max_connections=1)
        async with serving(slow) as server:
            first = asyncio.ensure_future(post(upstream, server.url))
            await asyncio.sleep(0.05)
            with pytest.raises(GatewayError) as refused:  # no place within 0.3 s
                await post(upstream, server.url)
            second = asyncio.ensure_future(post(upstream, server.url))  # waits its turn
            await asyncio.sleep(0.05)
            release.set()
            return list(await asyncio.gather(first, second)), refused.value

    answers, refused = run(main())
    assert answers == [{"ok": True}, {"ok": True}]
    assert type(refused) is UpstreamTimeout and refused.retryable


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "caf\u00e9\u2603"])
def test_a_header_that_cannot_be_sent_fails_before_anything_is(value: str) -> None:
    async def main() -> Server:
        async with serving(keep_answering) as server:
            with pytest.raises(GatewayError) as caught:
                async with upstream_errors("acme"):
                    await client().send(Request("POST", f"{server.url}/x", {"x-key": value}))
            assert type(caught.value) is UpstreamError and "acme" in str(caught.value)
        return server

    assert run(main()).requests == []


def test_a_large_body_arrives_whole_chunked_or_not() -> None:
    payload = bytes(range(256)) * (4 * 4096)  # 4 MiB

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    server: Server) -> None:
        while await read_request(reader, server):
            if len(server.requests) == 1:
                writer.write(answer(payload))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for at in range(0, len(payload), 100_000):
                    part = payload[at:at + 100_000]
                    writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def main() -> list[bytes]:
        upstream = client()
        async with serving(large) as server:
            request = Request("POST", f"{server.url}/big", {}, payload)  # a large request too
            return [(await upstream.send(request)).content for _ in range(2)]

    assert run(main()) == [payload, payload]


# ------------------------------------------------------------------ kept-alive connections
def test_connections_are_kept_alive_and_reused() -> None:
    async def main() -> Server:
        upstream = client()
        async with serving(keep_answering) as server:
            for _ in range(3):
                assert await post(upstream, server.url) == {"ok": True}
        return server

    server = run(main())
    assert (server.connections, len(server.requests)) == (1, 3)


def test_a_connection_the_upstream_closed_while_idle_is_replaced() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   server: Server) -> None:
        await read_request(reader, server)  # answers one request, then closes, idle
        writer.write(answer(b'{"n": %d}' % len(server.requests)))
        await writer.drain()

    async def main() -> tuple[Server, list[Any]]:
        upstream = client()
        async with serving(once) as server:
            first = await post(upstream, server.url)
            await asyncio.sleep(0.05)  # the close arrives while the connection is pooled
            return server, [first, await post(upstream, server.url)]

    server, answers = run(main())
    assert answers == [{"n": 1}, {"n": 2}]
    assert (server.connections, len(server.requests)) == (2, 2)  # nothing sent twice


def test_a_connection_idle_past_the_expiry_is_not_reused() -> None:
    async def main() -> Server:
        upstream = Client(connect_timeout=2, read_timeout=2, keepalive_expiry=0.1)
        async with serving(keep_answering) as server:
            await post(upstream, server.url)
            await post(upstream, server.url)  # at once: reused
            await asyncio.sleep(0.2)
            await post(upstream, server.url)  # past the expiry: a new connection
        return server

    server = run(main())
    assert (server.connections, len(server.requests)) == (2, 3)


def test_connection_close_is_honoured() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      server: Server) -> None:
        await read_request(reader, server)
        writer.write(answer(b"{}", headers="connection: close\r\n"))
        await writer.drain()
        await asyncio.sleep(0.3)  # says close, but does not close at once

    async def main() -> Server:
        upstream = client()
        async with serving(closing) as server:
            for _ in range(2):
                assert await post(upstream, server.url) == {}
        return server

    assert run(main()).connections == 2


# ------------------------------------------------------------------ TLS and proxies
def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return tmp / "cert.pem", tmp / "key.pem"


def test_tls_with_the_process_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    names: list[str | None] = []
    served.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,misc,func-returns-value]

    async def main() -> Any:
        async with serving(keep_answering, served) as server:
            return await post(client(), server.url)

    # Not trusted by the process's context (certifi's roots): refused, never sent.
    error = failure(main())
    assert type(error) is UpstreamUnreachable
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(tls, "context", lambda: trusting)
    assert run(main()) == {"ok": True}
    assert names[-1] == "localhost"  # SNI: the upstream's host


def test_an_upstream_behind_a_proxy_is_reached_through_it() -> None:
    async def forward_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            server: Server) -> None:
        while await read_request(reader, server):  # answers for the origin itself
            writer.write(answer(b'{"via": "proxy"}'))
            await writer.drain()

    async def main() -> tuple[Server, Any, Any]:
        async with serving(forward_proxy) as proxy, serving(keep_answering) as direct:
            upstream = Client(connect_timeout=2, read_timeout=2, proxies={
                "http": proxy.url, "no": f"localhost:{direct.url.rsplit(':', 1)[1]}"})
            via = await post(upstream, "http://upstream.invalid")
            bypassed = await post(upstream, direct.url)
            await upstream.aclose()
            return proxy, via, bypassed

    proxy, via, bypassed = run(main())
    assert via == {"via": "proxy"} and bypassed == {"ok": True}
    assert proxy.requests[0].startswith(b"POST http://upstream.invalid/v1/x HTTP/1.1")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_an_https_upstream_behind_a_proxy_is_tunnelled_and_streams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY: a CONNECT tunnel through the proxy, TLS to the upstream inside it
    (verified with the process's context, SNI the upstream's host), a stream's frames
    through it."""
    cert, key = _self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    monkeypatch.setattr(tls, "context", lambda: ssl.create_default_context(cafile=str(cert)))

    async def streaming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n")
        await writer.drain()

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     server: Server) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        server.requests.append(head)
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def main() -> tuple[Server, Server, list[str]]:
        async with serving(streaming, served) as origin, serving(tunnel) as proxy:
            upstream = Client(connect_timeout=2, read_timeout=2, proxies={"https": proxy.url})
            stream = await open_sse(upstream, Request("POST", f"{origin.url}/s"),
                                    provider="acme", on_error=lambda r: UpstreamError(r.text),
                                    decode=lambda e: Frame(events=[], raw=e), finish=list)
            seen = [f.raw.data for batch in [b async for b in stream.frames]
                    for f in batch if f.raw]
            await upstream.aclose()
            return origin, proxy, seen

    origin, proxy, seen = run(main())
    assert seen == ["one", "two"]
    assert proxy.requests[0].startswith(b"CONNECT localhost:")  # the origin's name
    assert origin.requests[0].startswith(b"POST /s HTTP/1.1")  # inside the tunnel


@pytest.mark.parametrize(("proxies", "url", "expected"), [
    ({}, ("https", "api.openai.com", 443), None),
    ({"https": "proxy:3128"}, ("https", "api.openai.com", 443), "http://proxy:3128"),
    ({"https": "http://p:1"}, ("http", "api.openai.com", 80), None),
    ({"all": "http://p:1"}, ("http", "api.openai.com", 80), "http://p:1"),
    ({"all": "http://p:1", "no": "openai.com"}, ("https", "api.openai.com", 443), None),
    ({"all": "http://p:1", "no": ".openai.com"}, ("https", "api.openai.com", 443), None),
    ({"all": "http://p:1", "no": "notopenai.com"}, ("https", "api.openai.com", 443),
     "http://p:1"),
    ({"all": "http://p:1", "no": "localhost:8000"}, ("http", "localhost", 9000), "http://p:1"),
    ({"all": "http://p:1", "no": "*"}, ("https", "api.openai.com", 443), None),
])
def test_which_upstreams_go_through_the_proxy(proxies: dict[str, str],
                                              url: tuple[str, str, int],
                                              expected: str | None) -> None:
    assert proxy_for(proxies, *url) == expected


def test_the_environments_proxy_settings_are_read_once() -> None:
    settings = Settings.from_env({"HTTPS_PROXY": "http://p:3128", "no_proxy": "localhost",
                                  "NO_PROXY": "ignored"})
    assert settings.proxies == {"https": "http://p:3128", "no": "localhost"}


