"""An embedded DynamoDB for local use and tests: moto in server mode.

moto's server is not atomic under concurrent requests (measured: oversold
balances), while DynamoDB is linearizable per item. So the embedded server
handles one request at a time: a lock around the moto app, with a threaded
HTTP/1.1 server in front that keeps connections alive (`_handler_for`).

moto itself is patched where it measured slow (afk/local/moto_patches.py), and
called without its Flask server (`_dynamodb_app`).
"""

from __future__ import annotations

import functools
import io
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from afk.local import moto_patches

# moto's backends are global to the process: every embedded server shares one lock.
_LOCK = threading.Lock()
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems",
                    "DescribeTable", "ListTables", "DescribeTimeToLive", "DescribeStream",
                    "GetShardIterator", "GetRecords", "ListStreams"})


def _serialized(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    def serve_one(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        with _LOCK:
            if action not in _READS:
                moto_patches.wrote()
            result = app(environ, start_response)
            try:
                return list(result)  # consume the whole body inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return serve_one


def _dynamodb_app() -> Callable[..., Iterable[bytes]]:
    """moto's DynamoDB and DynamoDB Streams handlers as one WSGI app, the operation's
    API told by its `X-Amz-Target` prefix. moto's own server (a Flask app per
    service behind a dispatcher that works out the service of every request from
    its headers, over every service moto knows) spent ~20% of each call's CPU
    there and imported Flask, Jinja and Click at start (bench/LEVERS.md)."""
    from botocore.exceptions import ClientError
    from moto.core import responses
    from moto.core.request import Request
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    # moto lists a handler class's methods with inspect.getmembers on every call.
    listed = getattr(responses, "method_names_from_class", None)
    if listed is not None and not hasattr(listed, "cache_info"):
        setattr(responses, "method_names_from_class", functools.cache(listed))  # noqa: B010

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        request = Request(environ)
        request.from_wsgi_server = True  # as moto's server marks its requests
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        handler = DynamoDBStreamsHandler if target.startswith("DynamoDBStreams") \
            else DynamoHandler
        try:
            status, headers, body = handler.dispatch(request, request.raw_url,
                                                     dict(request.headers))
        except ClientError as exc:  # what moto's server answers for one
            status, headers, body = 400, {}, exc.response["Error"]["Message"]
        if isinstance(body, str):
            body = body.encode()
        start_response(f"{status} {HTTPStatus(int(status)).phrase}",
                       [(str(k), str(v)) for k, v in headers.items()])
        return [body]

    return app


class EmbeddedDynamoDB:
    """`with EmbeddedDynamoDB() as db: db.endpoint` -> "http://127.0.0.1:PORT"."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 sock: socket.socket | None = None) -> None:
        """`sock`: a listening socket to serve on (bound by another process, which
        knows the endpoint before this one is up: afk/local/aws.py)."""
        self._host, self._port = host, port
        self._sock = sock
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmbeddedDynamoDB:
        moto_patches.apply()
        app = _serialized(_dynamodb_app())
        if self._sock is None:
            self._server = _KeepAliveServer((self._host, self._port), _handler_for(app))
        else:
            self._server = _KeepAliveServer.on(self._sock, _handler_for(app))
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="embedded-dynamodb", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmbeddedDynamoDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _KeepAliveServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 1024  # listen backlog: hundreds of clients may connect at once

    @classmethod
    def on(cls, sock: socket.socket, handler: type[WSGIRequestHandler]) -> _KeepAliveServer:
        """A server on a socket that is bound and listening already."""
        server = cls(sock.getsockname()[:2], handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        host, port = server.server_address[:2]
        server.server_name, server.server_port = str(host), int(port)
        server.setup_environ()
        return server


def _handler_for(app: Callable[..., list[bytes]]) -> type[WSGIRequestHandler]:
    """An HTTP/1.1 handler that keeps connections alive, as DynamoDB does.
    werkzeug's development server (moto's own) closes every connection, so each
    call paid a TCP connect and benchmarks measured that instead of the
    gateway. Requests are small JSON bodies with a Content-Length, answered with
    one; the body is read whole before the app runs, so nothing of one request
    is left for the next."""

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else a kept-alive reply waits on delayed ACKs

        def handle(self) -> None:
            self.close_connection = True
            self.handle_one_request()
            while not self.close_connection:
                self.handle_one_request()

        def handle_one_request(self) -> None:
            try:
                self.raw_requestline = self.rfile.readline(65537)
            except OSError:
                self.close_connection = True
                return
            if not self.raw_requestline or not self.parse_request():
                self.close_connection = True
                return
            environ = self.get_environ()
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ.update({
                "wsgi.input": io.BytesIO(self.rfile.read(length)), "wsgi.errors": sys.stderr,
                "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": True,
                "wsgi.multiprocess": False, "wsgi.run_once": False})
            started: list[Any] = []

            def start_response(status: str, headers: list[tuple[str, str]],
                               exc_info: Any = None) -> Callable[[bytes], None]:
                started[:] = [status, headers]
                return lambda data: None

            body = b"".join(app(environ, start_response))
            status, headers = started
            # The status line, headers and body in one write: one segment, one wake-up
            # of the caller (a write for the headers and one for the body cost ~20%
            # of this process's CPU per call, py-spy in bench/LEVERS.md).
            head = [f"HTTP/1.1 {status}\r\n"]
            head += [f"{name}: {value}\r\n" for name, value in headers
                     if name.lower() not in ("content-length", "connection", "transfer-encoding")]
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
            self.wfile.write("".join(head).encode("latin-1") + body)
            self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
