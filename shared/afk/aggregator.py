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

    # The shard list is re-read this often, not on every poll; an idle stream is polled
    # ever less often, up to IDLE_INTERVAL_S (each poll was three calls to the
    # embedded DynamoDB, which serves one call at a time: `afk dev`'s idle CPU and its
    # callers' latency, bench/LEVERS.md).
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
                    response = self._streams.get_records(ShardIterator=self._iterators[shard_id],
                                                         Limit=self._batch_size)
                    records = response.get("Records") or []
                    if records:
                        counted += aggregate(self._rollups, records)
                    # Advance only once the batch is counted (a failure retries it).
                    self._iterators[shard_id] = response["NextShardIterator"]
                    if not records:
                        break
        return counted

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

    def start(self) -> StreamPoller:
        def run() -> None:
            interval = self._interval
            while not self._stop.wait(interval):
                counted = 0
                try:
                    counted = self.drain()
                except Exception:  # noqa: BLE001 - retried on the next tick, as Lambda would
                    log.warning("aggregating the stream failed; retrying", exc_info=True)
                interval = self._interval if counted else min(self.IDLE_INTERVAL_S,
                                                              interval * 2)

        self._thread = threading.Thread(target=run, name="afk-aggregator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def local_poller(store: Any, endpoint: str | None, region: str) -> StreamPoller:
    """A poller on the stream of `store`'s table at a local DynamoDB endpoint."""
    import boto3

    streams = boto3.session.Session().client(
        "dynamodbstreams", region_name=region, endpoint_url=endpoint,
        aws_access_key_id="local", aws_secret_access_key="local")
    return StreamPoller(store.rollups, store.dynamo.client, streams, store.dynamo.table)
