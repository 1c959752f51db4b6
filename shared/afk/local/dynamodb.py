"""An embedded DynamoDB for local use and tests: moto in server mode.

moto's server is not atomic under concurrent requests (measured: oversold
balances), while DynamoDB is linearizable per item. So the embedded server
handles one request at a time: a lock around the moto app, with a threaded
HTTP/1.1 server in front that keeps connections alive (`_handler_for`).

moto also deep-copies a whole table for every item of every
TransactWriteItems (its rollback backup). Every settle is a transaction, so
`afk dev` got slower with every request it billed (measured in bench/: from
16 to 165 ms of moto CPU per request over one run). `_cheap_rollback_backups`
makes that backup copy only the items the transaction touches, which is all a
rollback restores.

moto 5.2 also writes every response through botocore's model, member by member:
~5 ms of CPU per item a Query, GetItem or stream read returns (measured: reading
5,000 ledger entries took 35 s). An item is DynamoDB JSON already when moto hands
it over, which is what that walk produces from it; `_items_as_they_are` sends it
as it is. And moto answers every Query by walking every item of the table (of
the table, not the partition): with the test suite's table at 10,000 items, one
account's ledger read took 4.6 s. `_queries_by_partition` hands moto only the
queried partition (DynamoDB's own cost model: a Query reads one partition).
"""

from __future__ import annotations

import copy
import functools
import io
import socket
import socketserver
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

# moto's backends are global to the process: every embedded server shares one lock.
_LOCK = threading.Lock()
# Bumped by every request that may write (anything but the reads below): an index
# of a table built at one generation is good until the next.
_generation = 0
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems",
                    "DescribeTable", "ListTables", "DescribeTimeToLive", "DescribeStream",
                    "GetShardIterator", "GetRecords", "ListStreams"})


def _serialized(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    def serve_one(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        global _generation
        action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        with _LOCK:
            if action not in _READS:
                _generation += 1
            result = app(environ, start_response)
            try:
                return list(result)  # consume the whole body inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return serve_one


# The running transaction's keys per table, and the tables backed up for it so far.
_touched: ContextVar[tuple[dict[str, list[dict[str, Any]]], dict[str, Any]] | None] = \
    ContextVar("touched", default=None)
_patched = False


def _cheap_rollback_backups() -> None:
    """Teach moto's Table to deep-copy only the items the running transaction
    touches; every other deep copy (backups, restores) stays complete."""
    global _patched
    if _patched:
        return
    try:
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.dynamo_type import DynamoType
        from moto.dynamodb.models.table import Table
    except ImportError:  # a moto without these internals: keep its own behaviour
        return
    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        touched: dict[str, list[dict[str, Any]]] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            touched.setdefault(op.get("TableName"), []).append(op.get("Key") or op.get("Item"))
        # moto appends a stream record per write as it goes and does not take them
        # back when it rolls a cancelled transaction back; DynamoDB streams only
        # committed writes. Remember each stream's length to cut it back.
        streams = [(table.stream_shard, len(table.stream_shard.items))
                   for name, table in self.tables.items()
                   if name in touched and getattr(table, "stream_shard", None) is not None]
        token = _touched.set((touched, {}))
        try:
            return transact(self, transact_items)
        except Exception:
            for shard, length in streams:
                del shard.items[length:]
            raise
        finally:
            _touched.reset(token)

    def deepcopy_table(self: Any, memo: dict[int, Any]) -> Any:
        touched, copies = _touched.get() or ({}, {})
        keys = touched.get(self.name)
        if keys is not None and self.name in copies:
            return copies[self.name]  # moto backs the table up once per item
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        if keys is None or not self.range_key_attr:
            for name, value in self.__dict__.items():
                setattr(copied, name, copy.deepcopy(value, memo))
            return copied
        copied.__dict__.update(self.__dict__)
        # Untouched partitions are shared (nothing writes them); touched ones copied.
        copied.items = defaultdict(dict, self.items)
        for key in keys:
            if not key or self.hash_key_attr not in key or self.range_key_attr not in key:
                continue
            hash_key = DynamoType(key[self.hash_key_attr])
            range_key = DynamoType(key[self.range_key_attr])
            partition = self.items.get(hash_key)
            if partition is None:
                continue
            if copied.items.get(hash_key) is partition:
                copied.items[hash_key] = dict(partition)
            item = partition.get(range_key)
            if item is not None:
                copied.items[hash_key][range_key] = copy.deepcopy(item, memo)
        copies[self.name] = copied
        return copied

    # Patching moto's classes in place is the point here; mypy rightly flags it.
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.__deepcopy__ = deepcopy_table  # type: ignore[attr-defined]
    _patched = True


def _queries_by_partition() -> None:
    """Teach moto's Table.query to look at the queried partition only: the base
    table's partition by its hash key, a global secondary index's through a map of
    the index's hash key values, built once per generation (any write discards it)."""
    try:
        from moto.dynamodb.models.table import Table
    except ImportError:  # a moto without it: keep its own behaviour
        return
    if getattr(Table, "_afk_by_partition", False):
        return
    query = Table.query
    indexes: dict[tuple[int, str], tuple[int, dict[Any, list[Any]]]] = {}

    def partition(table: Any, hash_key: Any, index_name: str | None,
                  conditions: list[tuple[str, Any]] | None) -> list[Any] | None:
        if index_name is None:
            if hash_key is None:
                return None
            found = table.items.get(hash_key)
            if found is None:
                return []
            return list(found.values()) if table.range_key_attr else [found]
        if not conditions or len(conditions) != 1:
            return None
        name, value = conditions[0]
        cached = indexes.get((id(table), index_name))
        if cached is None or cached[0] != _generation:
            by_value: dict[Any, list[Any]] = {}
            for item in table.all_items():
                key = item.attrs.get(name)
                if key:
                    by_value.setdefault(key, []).append(item)
            cached = indexes[(id(table), index_name)] = (_generation, by_value)
        return list(cached[1].get(value, ()))

    def by_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        items = partition(self, hash_key, index_name, kwargs.get("hash_key_conditions"))
        if items is None:
            return query(self, hash_key, *args, **kwargs)
        self.all_items = lambda: items  # moto's query walks all_items(): the partition
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = by_partition  # type: ignore[method-assign]
    Table._afk_by_partition = True  # type: ignore[attr-defined]


def _plain_json(value: Any) -> bool:
    if isinstance(value, str | bool) or value is None:
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    return False


def _items_as_they_are() -> None:
    """Teach moto's JSON serializer to send a map of attribute values (an item, a
    key, a stream image) as it is when it is plain DynamoDB JSON already (strings,
    booleans, null, maps and lists of those: every attribute type but binary).
    Anything else, binary included, still takes moto's own walk."""
    try:
        from moto.core.serialize import BaseJSONSerializer
    except ImportError:  # a moto without it: keep its own behaviour
        return
    if getattr(BaseJSONSerializer, "_afk_items_as_they_are", False):
        return
    walk = BaseJSONSerializer._serialize_type_map

    def serialize_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if getattr(shape.value, "name", None) == "AttributeValue" and _plain_json(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        walk(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_map = serialize_map  # type: ignore[method-assign]
    BaseJSONSerializer._afk_items_as_they_are = True  # type: ignore[attr-defined]


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
        _cheap_rollback_backups()
        _items_as_they_are()
        _queries_by_partition()
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
