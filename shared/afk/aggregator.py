"""The usage aggregator: reads the table's stream and keeps the rollups
(store/rollups.py), off the request path.

On AWS it is a Lambda function on the table's DynamoDB stream (template.yaml,
`AggregatorFunction`); `afk dev` runs the same `aggregate` in-process over
the embedded DynamoDB's stream (`StreamPoller`).

What the stream guarantees, and what this relies on (AWS: "Change data capture
for DynamoDB Streams", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html;
"Lambda parameters for Amazon DynamoDB event source mappings",
https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html):

* each stream record appears exactly once in the stream, but Lambda delivers it
  at least once: a batch whose function fails is retried whole until it
  succeeds or its records expire (24 hours; MaximumRetryAttempts and
  MaximumRecordAgeInSeconds default to infinite), and with
  BisectBatchOnFunctionError it is split in two and retried, so a record may
  be processed several times, in batches of any shape;
* records are ordered per item only. Ledger entries are immutable (one INSERT
  each), so nothing here depends on order across items.

Hence counting is idempotent per ledger entry (a marker item per entry, written
in the same transaction as the increment), never per batch.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from afk.store.rollups import Entry, Rollups, entry_from_image

log = logging.getLogger("afk.aggregator")


def entries_of(records: list[dict[str, Any]]) -> list[Entry]:
    """The new ledger entries among stream records (INSERTs with a new image)."""
    out = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        image = (record.get("dynamodb") or {}).get("NewImage")
        entry = entry_from_image(image) if image else None
        if entry is not None:
            out.append(entry)
    return out


def aggregate(rollups: Rollups, records: list[dict[str, Any]]) -> int:
    """Count a batch of stream records into the rollups; safe to repeat."""
    return rollups.count(entries_of(records))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: raises on failure, so the batch is retried."""
    from afk.gateway import default_gateway

    counted = aggregate(default_gateway().store.rollups, event.get("Records") or [])
    log.info("counted %d ledger entries", counted)
    return {"counted": counted}


class StreamPoller:
    """The stream read the way Lambda's event source mapping reads it, for `afk dev`
    and tests: every shard from TRIM_HORIZON, batches of `batch_size`, each
    batch handed to `aggregate` and retried (whole) if it fails."""

    # Each tick reads one batch of each shard, as Lambda polls a stream's shards "at a
    # base rate of 4 times per second" and reads on at once only while batches come
    # back full (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html): reading
    # on until a shard came back empty, under a steady load, meant one rollup
    # transaction per ledger entry or two (12.7 ms of the embedded DynamoDB's CPU
    # each, bench/LEVERS.md). The shard list is re-read every SHARDS_TTL_S, not on
    # every poll; an idle stream is polled ever less often, up to IDLE_INTERVAL_S
    # (the embedded DynamoDB serves one call at a time: `afk dev`'s idle CPU).
    SHARDS_TTL_S = 10.0
    IDLE_INTERVAL_S = 1.0

    def __init__(self, rollups: Rollups, client: Any, streams_client: Any, table: str,
                 *, batch_size: int = 1000, interval: float = 0.25) -> None:
        self._rollups = rollups
        self._client = client
        self._streams = streams_client
        self._table = table
        self._batch_size = batch_size
        self._interval = interval
        self._iterators: dict[str, str] = {}
        self._shard_ids: list[str] = []
        self._shards_read = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def drain(self) -> int:
        """Aggregate everything the stream holds now. Returns the entries counted."""
        counted = 0
        with self._lock:
            for shard_id in self._shards():
                while True:
                    read, got = self._read(shard_id)
                    counted += got
                    if not read:
                        break
        return counted

    def poll(self) -> tuple[int, bool]:
        """One read of each shard, as one tick of Lambda's poller: (entries counted,
        whether a batch came back full, so that more are waiting)."""
        counted, more = 0, False
        with self._lock:
            for shard_id in self._shards():
                read, got = self._read(shard_id)
                counted, more = counted + got, more or read >= self._batch_size
        return counted, more

    def _read(self, shard_id: str) -> tuple[int, int]:
        """One batch of a shard: (records read, ledger entries counted)."""
        response = self._streams.get_records(ShardIterator=self._iterators[shard_id],
                                             Limit=self._batch_size)
        records = response.get("Records") or []
        counted = aggregate(self._rollups, records) if records else 0
        # Advance only once the batch is counted (a failure retries it).
        self._iterators[shard_id] = response["NextShardIterator"]
        return len(records), counted

    def _shards(self) -> list[str]:
        if time.monotonic() - self._shards_read < self.SHARDS_TTL_S:
            return self._shard_ids
        arn = self._client.describe_table(TableName=self._table)["Table"].get(
            "LatestStreamArn")
        if arn is None:  # a table made before streams were on: nothing to read
            return []
        shards = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"],
                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self._shard_ids = [shard["ShardId"] for shard in shards]
        self._shards_read = time.monotonic()
        return self._shard_ids

    def start(self, *, first_after: float | None = None) -> StreamPoller:
        """Poll in a thread; the first poll after `first_after` seconds (a tick)."""

        def run() -> None:
            interval = self._interval if first_after is None else first_after
            while not self._stop.wait(interval):
                counted, more = 0, False
                try:
                    counted, more = self.poll()
                except Exception:  # noqa: BLE001 - retried on the next tick, as Lambda would
                    log.warning("aggregating the stream failed; retrying", exc_info=True)
                if more:  # a full batch: read on at once
                    interval = 0.0
                elif counted:
                    interval = self._interval
                else:
                    interval = min(self.IDLE_INTERVAL_S, max(interval, self._interval) * 2)

        self._thread = threading.Thread(target=run, name="afk-aggregator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def local_poller(store: Any, endpoint: str | None, region: str) -> StreamPoller:
    """A poller on the stream of `store`'s table at a local DynamoDB endpoint."""
    from afk.store.awsjson import Credentials, LeanDynamoDBStreams

    streams = LeanDynamoDBStreams(region, endpoint_url=endpoint,
                                  credentials=Credentials("local", "local"))
    return StreamPoller(store.rollups, store.dynamo.client, streams, store.dynamo.table)
