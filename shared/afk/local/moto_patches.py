"""What the embedded DynamoDB (afk/local/dynamodb.py) changes in moto, each patch
applied once per process by `apply()`.

moto deep-copies a whole table for every item of every
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

moto also works out each per-account backend's regions from a new boto3 Session,
which lists botocore's whole data directory: `_regions_without_a_session` reads them
from botocore's endpoints file instead (bench/LEVERS.md).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

# Bumped by every request that may write (anything but dynamodb._READS): an index
# of a table built at one generation is good until the next.
_generation = 0


def wrote() -> None:
    """A request that may write was served: indexes built before are stale."""
    global _generation
    _generation += 1


def _unpatched(module: str, name: str, flag: str) -> Any:
    """moto's `module.name` to patch, marked with `flag`; None if this moto lacks it
    (it keeps its own behaviour) or it is marked already (patched once per process)."""
    try:
        owner = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    if getattr(owner, flag, False):
        return None
    setattr(owner, flag, True)
    return owner


def apply() -> None:
    _cheap_rollback_backups()
    _items_as_they_are()
    _queries_by_partition()
    _regions_without_a_session()
    _one_model_loader()
    _conditions_parsed_once()


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
    Table = _unpatched("moto.dynamodb.models.table", "Table", "_afk_by_partition")
    if Table is None:
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

    Table.query = by_partition


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
    BaseJSONSerializer = _unpatched("moto.core.serialize", "BaseJSONSerializer",
                                    "_afk_items_as_they_are")
    if BaseJSONSerializer is None:
        return
    walk = BaseJSONSerializer._serialize_type_map

    def serialize_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if getattr(shape.value, "name", None) == "AttributeValue" and _plain_json(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        walk(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_map = serialize_map


def _regions_without_a_session() -> None:
    """Teach moto's per-account backends their regions from botocore's endpoints file
    (every region of every partition: DynamoDB is in all of them). moto asks a new
    boto3 Session for each service's regions, which lists botocore's whole data
    directory: ~55 ms of CPU in the first call the embedded DynamoDB answers, the
    one `afk dev` waits for before its first answer (bench/LEVERS.md)."""
    import botocore

    Backend = _unpatched("moto.core.base_backend", "AccountSpecificBackend", "_afk_regions")
    if Backend is None:
        return
    path = Path(botocore.__file__).parent / "data" / "endpoints.json"
    known: list[str] = []

    def regions(self: Any, service_name: str) -> list[str]:
        if not known:
            partitions = json.loads(path.read_text())["partitions"]
            known.extend(region for partition in partitions for region in partition["regions"])
        return list(known)

    Backend._generate_regions = regions


# The services whose models the embedded server loads (afk/local/dynamodb.py).
SERVED = frozenset({"dynamodb", "dynamodbstreams"})


class _Known:
    """The services a loader knows, as botocore's `load_service_model` asks: the ones
    served, and any other found by listing botocore's data directory after all."""

    def __init__(self, listing: Callable[[], list[str]]) -> None:
        self._listing = listing

    def __contains__(self, name: object) -> bool:
        return name in SERVED or name in self._listing()

    def __iter__(self) -> Iterator[str]:
        return iter(self._listing())


def _one_model_loader() -> None:
    """Teach moto to load service models with one botocore loader that checks a
    served service's name without listing botocore's data directory. moto made a new
    loader per model, and botocore's checks every name against that listing: ~20 ms
    of CPU per model, the DynamoDB one in the first call `afk dev` waits for."""
    create = _unpatched("moto.core.utils", "create_loader", "_afk_one_loader")
    if create is None:
        return
    loader = create()
    listing = loader.list_available_services
    loader.list_available_services = lambda type_name: _Known(lambda: listing(type_name))

    def one_loader() -> Any:
        return loader

    one_loader._afk_one_loader = True  # type: ignore[attr-defined]
    setattr(importlib.import_module("moto.core.utils"), "create_loader", one_loader)  # noqa: B010


def _conditions_parsed_once() -> None:
    """Teach moto to parse each condition expression once (with the same names and
    values): it parsed `attribute_not_exists(SK)` anew for every charge it stored and
    every marker of every rollup transaction. The parsed conditions are immutable
    (every attribute set in a constructor), so one serves every call."""
    parse = _unpatched("moto.dynamodb.comparisons", "get_filter_expression",
                       "_afk_parsed_once")
    if parse is None:
        return

    @functools.lru_cache(maxsize=512)
    def parsed(expr: str | None, names: str, values: str) -> Any:
        return parse(expr, json.loads(names), json.loads(values))

    def get_filter_expression(expr: str | None, names: Any, values: Any) -> Any:
        try:
            key = (json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))
        except (TypeError, ValueError):  # not plain JSON: parse it as moto does
            return parse(expr, names, values)
        return parsed(expr, *key)

    get_filter_expression._afk_parsed_once = True  # type: ignore[attr-defined]
    for module in ("moto.dynamodb.comparisons", "moto.dynamodb.models",
                   "moto.dynamodb.models.table"):
        setattr(importlib.import_module(module), "get_filter_expression",  # noqa: B010
                get_filter_expression)

