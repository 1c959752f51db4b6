"""Real DynamoDB's concurrency and throughput semantics in front of moto.

moto serializes every request and never produces a transaction conflict or a
throttle; DynamoDB does both. `DynamoDBSemantics` is an HTTP proxy in front of
any DynamoDB endpoint (the embedded moto server in tests and benches) that adds
them, so processes pointed at `proxy.endpoint` (``AFK_DYNAMODB_ENDPOINT``) see
what they would see on AWS. moto still does everything else (condition
expressions, validation, storage); the proxy answers only what it emulates.

The rules, from the Amazon DynamoDB Developer Guide:

* "Amazon DynamoDB Transactions: How it works", section "Transaction conflict
  handling in DynamoDB"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html):
  a PutItem, UpdateItem or DeleteItem on an item that an ongoing
  TransactWriteItems includes is rejected with `TransactionConflictException`;
  an item of a TransactWriteItems that is part of another ongoing
  TransactWriteItems cancels it with `TransactionCanceledException`, reason
  `TransactionConflict` for that item. The page lists no conflict between a
  TransactWriteItems and an ongoing single-item write (only TransactGetItems
  conflicts with those), and single-item writes are serializable with
  transactions, so here a transaction waits for such a write to finish. An
  ongoing transaction and a GetItem both succeed. Same page, "Capacity
  management for transactions": every item is written twice (prepare,
  commit), so a transactional write costs 2x.
* "DynamoDB item sizes and formats"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
  an item's size is the sum of its attribute names' and values' sizes: strings
  by UTF-8 bytes, numbers about 1 byte per two significant digits + 1, binary
  by raw bytes, null and Boolean 1 byte, List and Map 3 bytes + 1 per element
  + the elements (a Map element also counts its name). A write costs
  ceil(size / 1 KB) write units, size being the larger of the item before and
  after (PutItem, UpdateItem) or the deleted item; a failed conditional write
  still costs the item's size, 1 unit if it does not exist. A strongly
  consistent read costs ceil(size / 4 KB) read units, eventually consistent
  half; a missing item still costs 1 (0.5); a Query costs ceil(total size of
  the items it returns / 4 KB) (the guide counts projected-away attributes
  too; only what comes back is visible here).
* "Best practices for designing and using partition keys effectively"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html)
  and "Understanding DynamoDB warm throughput in different scenarios"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html):
  whatever the capacity mode, one partition takes at most 1,000 write units
  and 3,000 read units per second. Here a partition is one partition key
  value (adaptive capacity isolates a hot key into a partition of its own, so
  this is the ceiling a hot key meets), metered over a sliding 1-second
  window. Over it: `ProvisionedThroughputExceededException` with
  `ThrottlingReasons` `TableWriteKeyRangeThroughputExceeded` (and Read / Index
  variants; API Reference "ThrottlingReason"); a transaction is cancelled with
  reason `ThrottlingError` on the item.
* "Global secondary indexes", "Provisioned throughput considerations"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html):
  a table write also writes each index whose key attributes the item has
  before or after (one write to put, one to delete, two when the index key
  changes, none when the item is in the index neither before nor after or its
  projection is unchanged), sized by the projected entry, charged to the
  index's own partition key; a write that an index cannot take is throttled.
  Index writes from a transaction are propagated after it commits: 1x.

The error bodies are the JSON that botocore parses: ``__type`` ending in
``#<Code>`` becomes ``Error.Code``, ``message`` / ``Message`` the message, and
the modeled members (``CancellationReasons``, ``ThrottlingReasons``) land at
the top of ``ClientError.response``. botocore's standard retry mode
(botocore/retries/standard.py) retries ProvisionedThroughputExceededException
(a throttling code) but neither TransactionConflictException nor
TransactionCanceledException (not in its throttling or transient lists, 400,
not modeled retryable), exactly as against AWS; the callers' own retries are
what this layer tests. Not emulated: ClientRequestToken idempotency (moto
ignores it; the ledger proves idempotency with marker items), TransactGetItems
and BatchWriteItem conflicts and costs (forwarded as they are), Scan costs.

    with DynamoDBSemantics(backend_url, single_latency=0.004,
                           transaction_latency=0.015) as proxy:
        proxy.endpoint; proxy.counters(); proxy.inject(kind="conflict", op="UpdateItem")

    python -m tests.fakes.dynamodb_semantics --backend URL --port N

Over HTTP: ``GET /__semantics__/counters`` (JSON), ``POST /__semantics__/reset``,
``POST /__semantics__/inject`` with ``{"kind", "op", "count", "pk"}``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import re
import signal
import socket
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import urllib3

__all__ = ["Counters", "DynamoDBSemantics", "Rules", "item_size"]

Item = Mapping[str, Any]  # DynamoDB JSON: {"name": {"S": "..."}, ...}
FaultKind = Literal["conflict", "throttle"]

SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_CONFLICTABLE = SINGLE_WRITES | {"TransactWriteItems"}
_THROTTLEABLE = _CONFLICTABLE | {"GetItem", "Query"}
_SCHEMA_CHANGES = frozenset({"CreateTable", "DeleteTable", "UpdateTable"})
_CONTROL_PLANE = _SCHEMA_CHANGES | {"DescribeTable", "ListTables", "DescribeTimeToLive",
                                    "UpdateTimeToLive", "ListTagsOfResource", "TagResource",
                                    "UntagResource", "DescribeLimits", "DescribeEndpoints"}
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                         "host", "proxy-connection", "te", "upgrade"})
_PREFIX = "com.amazonaws.dynamodb.v20120810#"
# moto picks the service from the SigV4 scope; an unsigned call would reach its S3.
_UNSIGNED = ("AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, "
             "SignedHeaders=host, Signature=0")
# Messages as the API model documents them (TransactionCanceledException).
_CONFLICT_MESSAGE = "Transaction is ongoing for the item."
_THROTTLE_MESSAGE = ("Throughput exceeds the current capacity of your table or index. DynamoDB is "
                     "automatically scaling your table or index so please try again shortly. If "
                     "exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/"
                     "amazondynamodb/latest/developerguide/bp-partition-key-design.html.")
_INDEX_THROTTLE_MESSAGE = ("Throughput exceeds the current capacity for one or more global "
                           "secondary indexes. DynamoDB is automatically scaling your index so "
                           "please try again shortly.")
Reason = tuple[str, str]  # a cancellation reason's code and message


# --- item sizes -----------------------------------------------------------------------------

def item_size(item: Item | None) -> int:
    """Bytes DynamoDB bills for `item` (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(base64.b64decode(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(text: str) -> int:
    digits = "".join(map(str, Decimal(text).as_tuple().digits)).strip("0")
    return (len(digits) + 1) // 2 + 1


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


# --- configuration and counters ---------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """What the proxy enforces. Latencies are seconds added to each call; a
    transaction holds its items for all of its latency."""

    single_latency: float = 0.004
    transaction_latency: float = 0.015
    write_units_per_second: float = 1000.0
    read_units_per_second: float = 3000.0
    window: float = 1.0


@dataclass
class Counters:
    """A snapshot of what the proxy saw. Unit maps are keyed
    ``"<table>|<partition key>"`` or ``"<table>/<index>|<partition key>"``."""

    calls: dict[str, int] = field(default_factory=dict)  # every call received, by operation
    conflicts: int = 0  # TransactionConflictException answered
    cancellations: dict[str, int] = field(default_factory=dict)  # cancelled transactions by reason
    throttles: int = 0  # ProvisionedThroughputExceededException + ThrottlingError cancellations
    injected: int = 0  # faults answered from `inject`
    scans: int = 0
    write_units: dict[str, float] = field(default_factory=dict)  # consumed, total
    read_units: dict[str, float] = field(default_factory=dict)
    peak_write_units: dict[str, float] = field(default_factory=dict)  # most in one window
    peak_read_units: dict[str, float] = field(default_factory=dict)
    largest_item_size: int = 0
    largest_item_key: str = ""  # "<table>|<partition key>|<sort key>"
    largest_item_sizes: dict[str, int] = field(default_factory=dict)  # per "<table>|<pk>"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- tables -------------------------------------------------------------------------------------

def _scalar(value: Mapping[str, Any]) -> str:
    return str(next(iter(value.values())))


@dataclass(frozen=True)
class _Index:
    name: str
    hash: str
    range: str | None
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: frozenset[str]

    def entry(self, item: Item | None, table_keys: frozenset[str]) -> Item | None:
        """The item as this index stores it, or None if the index skips it."""
        if not item or self.hash not in item or (self.range and self.range not in item):
            return None
        if self.projection == "ALL":
            return item
        keep = table_keys | {self.hash, self.range} | self.include
        return {name: value for name, value in item.items() if name in keep}

    def key(self, entry: Item) -> tuple[str, str]:
        return (_scalar(entry[self.hash]), _scalar(entry[self.range]) if self.range else "")


@dataclass(frozen=True)
class _Schema:
    table: str
    hash: str
    range: str | None
    indexes: tuple[_Index, ...]

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> _Schema:
        def keys(schema: list[Mapping[str, str]]) -> tuple[str, str | None]:
            by_type = {k["KeyType"]: k["AttributeName"] for k in schema}
            return by_type["HASH"], by_type.get("RANGE")

        indexes = []
        for gsi in table.get("GlobalSecondaryIndexes") or []:
            hash_, range_ = keys(gsi["KeySchema"])
            projection = gsi.get("Projection") or {}
            indexes.append(_Index(gsi["IndexName"], hash_, range_,
                                  projection.get("ProjectionType", "ALL"),
                                  frozenset(projection.get("NonKeyAttributes") or ())))
        hash_, range_ = keys(table["KeySchema"])
        return cls(table["TableName"], hash_, range_, tuple(indexes))

    @property
    def key_names(self) -> frozenset[str]:
        return frozenset(n for n in (self.hash, self.range) if n)

    def key_of(self, item: Item) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names}

    def index(self, name: str) -> _Index | None:
        return next((ix for ix in self.indexes if ix.name == name), None)


@dataclass(frozen=True)
class _Target:
    """One item a call writes or reads."""

    schema: _Schema
    key: dict[str, Any]

    @property
    def id(self) -> tuple[str, str]:
        return self.schema.table, json.dumps(self.key, sort_keys=True)

    @property
    def pk(self) -> str:
        return _scalar(self.key[self.schema.hash])

    @property
    def bucket(self) -> str:
        return f"{self.schema.table}|{self.pk}"

    @property
    def label(self) -> str:
        sk = self.schema.range
        return f"{self.bucket}|{_scalar(self.key[sk]) if sk else ''}"


def _write_charges(target: _Target, before: Item | None, after: Item | None,
                   factor: int = 1) -> Counter[str]:
    """Write units per partition bucket for changing `before` into `after`."""
    charges: Counter[str] = Counter()
    charges[target.bucket] += factor * _write_units(max(item_size(before), item_size(after)))
    schema = target.schema
    for ix in schema.indexes:
        old, new = ix.entry(before, schema.key_names), ix.entry(after, schema.key_names)
        prefix = f"{schema.table}/{ix.name}|"
        if old is not None and new is not None and ix.key(old) == ix.key(new):
            if old != new:
                charges[prefix + ix.key(new)[0]] += _write_units(max(item_size(old),
                                                                      item_size(new)))
            continue
        for entry in (old, new):
            if entry is not None:
                charges[prefix + ix.key(entry)[0]] += _write_units(item_size(entry))
    return charges


# --- throughput ---------------------------------------------------------------------------------

class _Meter:
    """Units consumed per bucket over a sliding window, totals and peaks.
    Not thread-safe: the proxy calls it under its lock."""

    def __init__(self, limit: float, window: float) -> None:
        self.limit, self.window = limit, window
        self._entries: dict[str, deque[tuple[float, float]]] = {}
        self._in_window: dict[str, float] = {}
        self.totals: Counter[str] = Counter()
        self.peaks: dict[str, float] = {}

    def _usage(self, bucket: str, now: float) -> float:
        entries = self._entries.get(bucket)
        while entries and entries[0][0] <= now - self.window:
            self._in_window[bucket] -= entries.popleft()[1]
        return self._in_window.get(bucket, 0.0)

    def over(self, charges: Mapping[str, float], now: float) -> list[str]:
        """The buckets that cannot take `charges` now."""
        return [b for b, units in charges.items()
                if units > 0 and self._usage(b, now) + units > self.limit]

    def add(self, charges: Mapping[str, float], now: float) -> None:
        for bucket, units in charges.items():
            if units <= 0:
                continue
            self._usage(bucket, now)
            self._entries.setdefault(bucket, deque()).append((now, units))
            self._in_window[bucket] = self._in_window.get(bucket, 0.0) + units
            self.totals[bucket] += units
            self.peaks[bucket] = max(self.peaks.get(bucket, 0.0), self._in_window[bucket])


# --- wire ---------------------------------------------------------------------------------------

@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _Call:
    op: str
    headers: dict[str, str]  # the client's, minus hop-by-hop
    raw: bytes
    payload: dict[str, Any]

    @property
    def region(self) -> str:
        match = re.search(r"Credential=[^/]+/\d+/([^/]+)/", self.headers.get("Authorization", ""))
        return match.group(1) if match else "us-east-1"


def _error(code: str, message: str, message_key: str = "message", **members: Any) -> _Response:
    body = json.dumps({"__type": _PREFIX + code, message_key: message, **members}).encode()
    return _Response(400, [("Content-Type", "application/x-amz-json-1.0"),
                           ("X-Amzn-ErrorType", code),
                           ("x-amzn-RequestId", uuid.uuid4().hex),
                           ("x-amz-crc32", str(zlib.crc32(body)))], body)


def _is_index(bucket: str) -> bool:
    return "/" in bucket.partition("|")[0]


def _throttle_reason(buckets: Iterable[str]) -> Reason:
    index = all(_is_index(b) for b in buckets)
    return "ThrottlingError", _INDEX_THROTTLE_MESSAGE if index else _THROTTLE_MESSAGE


def _cancelled(reasons: list[Reason | None]) -> _Response:
    shaped = [{"Code": r[0], "Message": r[1]} if r else {"Code": "None"} for r in reasons]
    summary = ", ".join(r[0] if r else "None" for r in reasons)
    return _error("TransactionCanceledException",
                  "Transaction cancelled, please refer cancellation reasons for specific "
                  f"reasons [{summary}]", message_key="Message", CancellationReasons=shaped)


def _throttled(call: _Call, bucket: str, operation: str) -> _Response:
    table, _, _ = bucket.partition("|")
    table, _, index = table.partition("/")
    arn = f"arn:aws:dynamodb:{call.region}:123456789012:table/{table}"
    reason = "Index" if index else "Table"
    return _error("ProvisionedThroughputExceededException", _throttle_reason([bucket])[1],
                  ThrottlingReasons=[{
                      "reason": f"{reason}{operation}KeyRangeThroughputExceeded",
                      "resource": f"{arn}/index/{index}" if index else arn}])


@dataclass
class _Fault:
    kind: FaultKind
    op: str | None
    remaining: int
    pk: str | None

    def matches(self, op: str, pks: list[str]) -> bool:
        applies = _CONFLICTABLE if self.kind == "conflict" else _THROTTLEABLE
        return (self.remaining > 0 and op in applies and self.op in (None, op)
                and (self.pk is None or self.pk in pks))


# --- the proxy ----------------------------------------------------------------------------------

class DynamoDBSemantics:
    """An HTTP proxy adding DynamoDB's conflicts, throttles and latency in front
    of `backend` (a DynamoDB endpoint URL). Keyword overrides are `Rules` fields."""

    def __init__(self, backend: str, rules: Rules | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, **overrides: float) -> None:
        self.backend = backend.rstrip("/")
        self.rules = replace(rules or Rules(), **overrides)
        self._address = (host, port)
        self._pool = urllib3.connection_from_url(self.backend, maxsize=64, block=True,
                                                 retries=False, timeout=30.0)
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        self._in_transactions: set[tuple[str, str]] = set()
        self._in_writes: set[tuple[str, str]] = set()
        self._schemas: dict[str, _Schema] = {}
        self._items: dict[tuple[str, str], Item | None] = {}
        self._faults: list[_Fault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # lifecycle

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DynamoDBSemantics:
        self._server = _Server(self._address, _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="dynamodb-semantics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.close()

    def __enter__(self) -> DynamoDBSemantics:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # counters and faults

    def counters(self) -> Counters:
        with self._lock:
            snapshot = copy.deepcopy(self._counters)
            snapshot.write_units = dict(self._writes.totals)
            snapshot.read_units = dict(self._reads.totals)
            snapshot.peak_write_units = dict(self._writes.peaks)
            snapshot.peak_read_units = dict(self._reads.peaks)
            return snapshot

    def reset(self) -> None:
        """Zero the counters, forget consumed throughput and pending faults."""
        with self._lock:
            self._counters = Counters()
            self._writes = _Meter(self.rules.write_units_per_second, self.rules.window)
            self._reads = _Meter(self.rules.read_units_per_second, self.rules.window)
            self._faults = []

    def inject(self, kind: FaultKind, op: str | None = None, count: int = 1,
               pk: str | None = None) -> None:
        """Answer the next `count` matching calls as AWS would answer a conflict
        or a throttle, without reaching the backend. `op` None matches every
        operation the fault can happen to; `pk` restricts to calls touching an
        item of that partition key value (the transaction's reasons then name
        those items; otherwise its first)."""
        if kind not in ("conflict", "throttle"):
            raise ValueError(f"unknown fault kind {kind!r}")
        applies = _CONFLICTABLE if kind == "conflict" else _THROTTLEABLE
        if op is not None and op not in applies:
            raise ValueError(f"a {kind} cannot happen to {op}")
        with self._lock:
            self._faults.append(_Fault(kind, op, count, pk))

    # dispatch

    def handle(self, op: str, headers: dict[str, str], raw: bytes) -> _Response:
        with self._lock:
            self._counters.calls[op] = self._counters.calls.get(op, 0) + 1
            if op == "Scan":
                self._counters.scans += 1
        if op in _CONTROL_PLANE or not op:
            if op in _SCHEMA_CHANGES:
                with self._lock:
                    self._schemas.clear()
                    self._items.clear()
            return self.forward("POST", "/", headers, raw)
        call = _Call(op, headers, raw, json.loads(raw or b"{}"))
        if op in SINGLE_WRITES:
            return self._single_write(call)
        if op == "TransactWriteItems":
            return self._transact_write(call)
        if op in ("GetItem", "Query"):
            return self._read(call)
        time.sleep(self.rules.single_latency)
        response = self.forward("POST", "/", headers, raw)
        if op == "BatchGetItem" and response.status == 200:
            self._charge_batch_get(call, json.loads(response.body))
        return response

    def _single_write(self, call: _Call) -> _Response:
        request = call.payload
        target = self._target(call, request, item_key=call.op == "PutItem")
        if target is None:
            return self.forward("POST", "/", call.headers, call.raw)
        fault = self._take_fault(call.op, [target.pk])
        if fault is not None:
            return self._fault_response(call, fault, [target])
        time.sleep(self.rules.single_latency)
        with self._holding_for_write(target) as held:
            if not held:
                with self._lock:
                    self._counters.conflicts += 1
                return _error("TransactionConflictException", _CONFLICT_MESSAGE)
            before = self._item(call, target)
            after = request["Item"] if call.op == "PutItem" else (
                None if call.op == "DeleteItem" else before)
            estimate = _write_charges(target, before, after)
            refused = self._admit(self._writes, estimate)
            if refused:
                return _throttled(call, refused[0], "Write")
            if call.op == "UpdateItem":
                response, after = self._forward_update(call, target, before)
            else:
                response = self.forward("POST", "/", call.headers, call.raw)
                if response.status != 200:
                    after = before
            self._remember(target, after, known=response.status < 500)
            self._settle(self._writes, estimate, _write_charges(target, before, after))
            self._saw_items(target, before, after)
            return response

    def _forward_update(self, call: _Call, target: _Target,
                        before: Item | None) -> tuple[_Response, Item | None]:
        """Forward an UpdateItem and learn the item it leaves: moto returns it when
        asked for ALL_NEW, which is taken back out if the caller did not ask."""
        asked = call.payload.get("ReturnValues") or "NONE"
        if asked not in ("NONE", "ALL_NEW"):
            response = self.forward("POST", "/", call.headers, call.raw)
            return response, self._get_item(call, target) if response.status == 200 else before
        payload = {**call.payload, "ReturnValues": "ALL_NEW"}
        response = self.forward("POST", "/", call.headers, json.dumps(payload).encode())
        if response.status != 200:
            return response, before
        body = json.loads(response.body)
        after = body.get("Attributes")
        if asked == "NONE":
            del body["Attributes"]
            raw = json.dumps(body).encode()
            headers = [(k, str(zlib.crc32(raw)) if k.lower() == "x-amz-crc32" else v)
                       for k, v in response.headers]
            response = _Response(response.status, headers, raw)
        return response, after

    def _transact_write(self, call: _Call) -> _Response:
        targets, actions = [], []
        for action in call.payload.get("TransactItems") or []:
            (kind, body), = action.items()
            target = self._target(call, body, item_key=kind == "Put")
            if target is None:
                return self.forward("POST", "/", call.headers, call.raw)
            targets.append(target)
            actions.append((kind, body))
        if len({t.id for t in targets}) != len(targets):
            return self.forward("POST", "/", call.headers, call.raw)  # moto says why
        fault = self._take_fault(call.op, [t.pk for t in targets])
        if fault is not None:
            return self._fault_response(call, fault, targets)
        conflicts = self._hold_for_transaction(targets)
        if any(conflicts):
            return self._cancel([("TransactionConflict", _CONFLICT_MESSAGE) if c else None
                                 for c in conflicts])
        try:
            befores = [self._item(call, t) for t in targets]
            estimates = [self._transactional_charges(
                kind, target, before, body["Item"] if kind == "Put" else before)
                for (kind, body), target, before in zip(actions, targets, befores, strict=True)]
            refused = self._admit(self._writes, sum(estimates, Counter()))
            if refused:
                return self._cancel([_throttle_reason(set(e) & set(refused))
                                     if set(e) & set(refused) else None for e in estimates])
            time.sleep(self.rules.transaction_latency)
            response = self.forward("POST", "/", call.headers, call.raw)
            if response.status != 200:
                if response.status >= 500:  # the items may or may not have changed
                    for target in targets:
                        self._remember(target, None, known=False)
                self._count_backend_cancellation(response)
                return response
            actual: Counter[str] = Counter()
            for (kind, body), target, before in zip(actions, targets, befores, strict=True):
                after = (body["Item"] if kind == "Put" else None if kind == "Delete"
                         else self._get_item(call, target) if kind == "Update" else before)
                self._remember(target, after)
                actual += self._transactional_charges(kind, target, before, after)
                self._saw_items(target, before, after)
            self._settle(self._writes, sum(estimates, Counter()), actual)
            return response
        finally:
            with self._released:
                self._in_transactions.difference_update(t.id for t in targets)
                self._released.notify_all()

    @staticmethod
    def _transactional_charges(kind: str, target: _Target, before: Item | None,
                               after: Item | None) -> Counter[str]:
        if kind == "ConditionCheck":
            return Counter({target.bucket: 2 * _write_units(item_size(before))})
        # The table item is written twice (prepare, commit); indexes once, after commit.
        charges = _write_charges(target, before, after)
        charges[target.bucket] *= 2
        return charges

    def _read(self, call: _Call) -> _Response:
        request = call.payload
        if call.op == "GetItem":
            target = self._target(call, request, item_key=False)
            bucket = target.bucket if target else None
            consistent = bool(request.get("ConsistentRead"))
        else:
            bucket, consistent = self._query_bucket(call)
            target = None
        if bucket is None:
            time.sleep(self.rules.single_latency)
            return self.forward("POST", "/", call.headers, call.raw)
        pk = bucket.rpartition("|")[2]
        fault = self._take_fault(call.op, [pk])
        if fault is not None:
            return self._fault_response(call, fault, [], bucket=bucket)
        time.sleep(self.rules.single_latency)
        estimate = Counter({bucket: _read_units(0, consistent)})
        refused = self._admit(self._reads, estimate)
        if refused:
            return _throttled(call, refused[0], "Read")
        response = self.forward("POST", "/", call.headers, call.raw)
        if response.status != 200:
            return response
        body = json.loads(response.body)
        if target is not None:
            item = body.get("Item")
            size = item_size(item)
            self._saw_items(target, item)
        else:
            size = sum(item_size(item) for item in body.get("Items") or [])
        self._settle(self._reads, estimate, Counter({bucket: _read_units(size, consistent)}))
        return response

    def _query_bucket(self, call: _Call) -> tuple[str | None, bool]:
        request = call.payload
        schema = self._schema(call, request.get("TableName", ""))
        index_name = request.get("IndexName")
        index = schema.index(index_name) if schema and index_name else None
        if schema is None or (index_name and index is None):
            return None, False
        hash_name = index.hash if index else schema.hash
        names = request.get("ExpressionAttributeNames") or {}
        values = request.get("ExpressionAttributeValues") or {}
        expression = request.get("KeyConditionExpression") or ""
        for name, placeholder in re.findall(r"([#\w.]+)\s*=\s*(:\w+)", expression):
            if names.get(name, name) == hash_name and placeholder in values:
                prefix = f"{schema.table}/{index_name}" if index else schema.table
                # Index reads are always eventually consistent.
                return f"{prefix}|{_scalar(values[placeholder])}", (
                    not index and bool(request.get("ConsistentRead")))
        return None, False

    def _charge_batch_get(self, call: _Call, body: Mapping[str, Any]) -> None:
        requested = call.payload.get("RequestItems") or {}
        for table, items in (body.get("Responses") or {}).items():
            schema = self._schema(call, table)
            if schema is None:
                continue
            consistent = bool((requested.get(table) or {}).get("ConsistentRead"))
            charges: Counter[str] = Counter()
            for item in items:
                if schema.hash in item:
                    charges[f"{table}|{_scalar(item[schema.hash])}"] += _read_units(
                        item_size(item), consistent)
            with self._lock:
                self._reads.add(charges, time.monotonic())

    # item holds

    @contextmanager
    def _holding_for_write(self, target: _Target) -> Iterator[bool]:
        """Hold `target` for a single-item write: False when a transaction has it.
        Writes to one item are serialized (DynamoDB is linearizable per item)."""
        with self._released:
            while target.id in self._in_writes:  # never also in a transaction
                self._released.wait()
            held = target.id not in self._in_transactions
            if held:
                self._in_writes.add(target.id)
        if not held:
            yield False
            return
        try:
            yield True
        finally:
            with self._released:
                self._in_writes.discard(target.id)
                self._released.notify_all()

    def _hold_for_transaction(self, targets: list[_Target]) -> list[bool]:
        """Hold every target, or none: per target, whether another transaction
        has it. A single-item write in progress is waited for, not a conflict."""
        ids = [t.id for t in targets]
        with self._released:
            while True:
                conflicts = [i in self._in_transactions for i in ids]
                if any(conflicts):
                    return conflicts
                if not any(i in self._in_writes for i in ids):
                    self._in_transactions.update(ids)
                    return conflicts
                self._released.wait()

    # throughput and counters

    def _admit(self, meter: _Meter, charges: Mapping[str, float]) -> list[str]:
        """Consume `charges`, or return the buckets over their limit (and consume nothing)."""
        with self._lock:
            now = time.monotonic()
            refused = meter.over(charges, now)
            if refused:
                self._counters.throttles += 1
            else:
                meter.add(charges, now)
            return refused

    def _settle(self, meter: _Meter, estimate: Mapping[str, float],
                actual: Mapping[str, float]) -> None:
        """Charge what a call cost beyond what was admitted (never refunds)."""
        extra = {b: units - estimate.get(b, 0) for b, units in actual.items()}
        with self._lock:
            meter.add(extra, time.monotonic())

    def _cancel(self, reasons: list[Reason | None]) -> _Response:
        with self._lock:
            for code in {r[0] for r in reasons if r}:
                self._counters.cancellations[code] = self._counters.cancellations.get(code, 0) + 1
        return _cancelled(reasons)

    def _count_backend_cancellation(self, response: _Response) -> None:
        try:
            reasons = json.loads(response.body).get("CancellationReasons") or []
        except ValueError:
            return
        with self._lock:
            for code in {r.get("Code") for r in reasons} - {None, "None"}:
                self._counters.cancellations[code] = self._counters.cancellations.get(code, 0) + 1

    def _saw_items(self, target: _Target, *items: Item | None) -> None:
        size = max(item_size(item) for item in items)
        with self._lock:
            counters = self._counters
            counters.largest_item_sizes[target.bucket] = max(
                size, counters.largest_item_sizes.get(target.bucket, 0))
            if size > counters.largest_item_size:
                counters.largest_item_size, counters.largest_item_key = size, target.label

    # faults

    def _take_fault(self, op: str, pks: list[str]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(op, pks):
                    fault.remaining -= 1
                    self._counters.injected += 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault
        return None

    def _fault_response(self, call: _Call, fault: _Fault, targets: list[_Target],
                        bucket: str | None = None) -> _Response:
        if call.op == "TransactWriteItems":
            reason = (("TransactionConflict", _CONFLICT_MESSAGE) if fault.kind == "conflict"
                      else _throttle_reason([targets[0].bucket]))
            hit = [fault.pk is None and i == 0 or t.pk == fault.pk for i, t in enumerate(targets)]
            if fault.kind == "throttle":
                with self._lock:
                    self._counters.throttles += 1
            return self._cancel([reason if h else None for h in hit])
        if fault.kind == "conflict":
            with self._lock:
                self._counters.conflicts += 1
            return _error("TransactionConflictException", _CONFLICT_MESSAGE)
        with self._lock:
            self._counters.throttles += 1
        operation = "Write" if call.op in SINGLE_WRITES else "Read"
        return _throttled(call, bucket or targets[0].bucket, operation)

    # backend

    def _target(self, call: _Call, body: Mapping[str, Any], *, item_key: bool) -> _Target | None:
        schema = self._schema(call, body.get("TableName", ""))
        if schema is None:
            return None
        try:
            key = schema.key_of(body["Item"] if item_key else body["Key"])
        except (KeyError, TypeError):
            return None  # malformed: moto answers with the validation error
        return _Target(schema, key)

    def _schema(self, call: _Call, table: str) -> _Schema | None:
        with self._lock:
            schema = self._schemas.get(table)
        if schema is None and table:
            status, body = self._backend(call, "DescribeTable", {"TableName": table})
            if status != 200:
                return None
            schema = _Schema.from_description(body["Table"])
            with self._lock:
                self._schemas[table] = schema
        return schema

    def _item(self, call: _Call, target: _Target) -> Item | None:
        """The item as it is now: the last version this proxy wrote or fetched.
        Every write to it is held (above), so the copy cannot go stale unless
        something writes to the backend behind the proxy's back."""
        with self._lock:
            if target.id in self._items:
                return self._items[target.id]
        item = self._get_item(call, target)
        self._remember(target, item)
        return item

    def _remember(self, target: _Target, item: Item | None, *, known: bool = True) -> None:
        with self._lock:
            if not known:  # the backend failed: the item may or may not have changed
                self._items.pop(target.id, None)
            elif len(self._items) < 200_000:
                self._items[target.id] = item

    def _get_item(self, call: _Call, target: _Target) -> Item | None:
        status, body = self._backend(call, "GetItem", {
            "TableName": target.schema.table, "Key": target.key, "ConsistentRead": True})
        return body.get("Item") if status == 200 else None

    def _backend(self, call: _Call, op: str, payload: Mapping[str, Any]) -> tuple[int, Any]:
        """The proxy's own, uncounted calls, made with the caller's credentials."""
        headers = {"X-Amz-Target": f"DynamoDB_20120810.{op}",
                   "Content-Type": "application/x-amz-json-1.0",
                   "Authorization": call.headers.get("Authorization", _UNSIGNED)}
        response = self.forward("POST", "/", headers, json.dumps(payload).encode())
        return response.status, json.loads(response.body or b"{}")

    def forward(self, method: str, path: str, headers: Mapping[str, str],
                body: bytes) -> _Response:
        """Pass one request through to the backend unchanged."""
        response = self._pool.urlopen(method, path, body=body, headers=dict(headers),
                                      preload_content=True, decode_content=False,
                                      redirect=False, assert_same_host=False)
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
        return _Response(response.status, kept, response.data)


# --- HTTP ---------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # several processes' connection pools connect at once

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 semantics: DynamoDBSemantics) -> None:
        self.semantics = semantics
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Close the listening socket and every kept-alive connection."""
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    timeout = 300  # an idle keep-alive connection frees its thread after this
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        semantics = self.server.semantics
        if self.path.startswith("/__semantics__/"):
            self._control(raw)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        target = self.headers.get("X-Amz-Target", "")
        try:
            if target.startswith("DynamoDB_20120810."):
                headers.setdefault("Authorization", _UNSIGNED)
                response = semantics.handle(target.partition(".")[2], headers, raw)
            else:
                response = semantics.forward("POST", self.path, headers, raw)
        except Exception as exc:  # noqa: BLE001 - the client gets a 500, as from DynamoDB
            response = _Response(500, [("Content-Type", "application/x-amz-json-1.0")],
                                 json.dumps({"__type": _PREFIX + "InternalServerError",
                                             "message": f"dynamodb_semantics: {exc!r}"}).encode())
        self._send(response)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/__semantics__/counters":
            self._send_json(self.server.semantics.counters().to_dict())
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        self._send(self.server.semantics.forward("GET", self.path, headers, b""))

    def _control(self, raw: bytes) -> None:
        semantics = self.server.semantics
        if self.path == "/__semantics__/reset":
            semantics.reset()
            self._send_json({})
        elif self.path == "/__semantics__/inject":
            try:
                semantics.inject(**json.loads(raw or b"{}"))
            except (TypeError, ValueError) as exc:
                self._send_json({"error": str(exc)}, status=400)
                return
            self._send_json({})
        else:
            self._send_json({"error": "not found"}, status=404)

    def _send_json(self, data: Any, status: int = 200) -> None:
        self._send(_Response(status, [("Content-Type", "application/json")],
                             json.dumps(data).encode()))

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


# --- command line -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.dynamodb_semantics",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", help="DynamoDB endpoint URL (default: an embedded moto)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    defaults = Rules()
    for name in ("single_latency", "transaction_latency", "write_units_per_second",
                 "read_units_per_second"):
        parser.add_argument("--" + name.replace("_", "-"), type=float,
                            default=getattr(defaults, name))
    args = parser.parse_args(argv)
    rules = Rules(args.single_latency, args.transaction_latency, args.write_units_per_second,
                  args.read_units_per_second)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    embedded = None
    backend = args.backend
    if backend is None:
        from afk.local.dynamodb import EmbeddedDynamoDB

        embedded = EmbeddedDynamoDB().start()
        backend = embedded.endpoint
    try:
        with DynamoDBSemantics(backend, rules, host=args.host, port=args.port) as proxy:
            print(json.dumps({"endpoint": proxy.endpoint, "backend": backend,
                              "rules": asdict(rules)}), flush=True)
            stop.wait()
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
