"""An embedded DynamoDB for local use and tests: moto in server mode.

moto's server is not atomic under concurrent requests (measured: oversold
balances), while DynamoDB is linearizable per item. So the embedded server
handles one request at a time: a lock around the moto app, with a threaded
HTTP server in front so keep-alive connections still work.

moto also deep-copies a whole table for every item of every
TransactWriteItems (its rollback backup). Every settle is a transaction, so
`afk dev` got slower with every request it billed (measured in bench/: from
16 to 165 ms of moto CPU per request over one run). `_cheap_rollback_backups`
makes that backup copy only the items the transaction touches, which is all a
rollback restores.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any


def _serialized(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    lock = threading.Lock()

    def serve_one(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                return list(result)  # consume the whole body inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return serve_one


_touched: ContextVar[dict[str, list[dict[str, Any]]] | None] = ContextVar("touched",
                                                                          default=None)
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
        token = _touched.set(touched)
        try:
            return transact(self, transact_items)
        finally:
            _touched.reset(token)

    def deepcopy_table(self: Any, memo: dict[int, Any]) -> Any:
        keys = (_touched.get() or {}).get(self.name)
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        if keys is None or not self.range_key_attr:
            for name, value in self.__dict__.items():
                setattr(copied, name, copy.deepcopy(value, memo))
            return copied
        copied.__dict__.update(self.__dict__)
        copied.items = defaultdict(dict, {h: dict(r) for h, r in self.items.items()})
        for key in keys:
            if not key or self.hash_key_attr not in key or self.range_key_attr not in key:
                continue
            hash_key = DynamoType(key[self.hash_key_attr])
            range_key = DynamoType(key[self.range_key_attr])
            item = self.items.get(hash_key, {}).get(range_key)
            if item is not None:
                copied.items[hash_key][range_key] = copy.deepcopy(item, memo)
        return copied

    DynamoDBBackend.transact_write_items = transact_write_items
    Table.__deepcopy__ = deepcopy_table
    _patched = True


class EmbeddedDynamoDB:
    """`with EmbeddedDynamoDB() as db: db.endpoint` -> "http://127.0.0.1:PORT"."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmbeddedDynamoDB:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        _cheap_rollback_backups()

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        app = _serialized(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._host, self._port, app, threaded=True,
                                   request_handler=QuietHandler)
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
