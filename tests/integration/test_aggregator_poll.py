"""The usage aggregator's poller reads a stream the way Lambda's event source mapping
does: one batch per shard per tick, and on at once only while batches come back
full (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html). Under a steady
load each tick counts everything since the last one in one transaction per rollup,
instead of chasing every new entry as it lands (bench/LEVERS.md)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from afk.aggregator import local_poller
from afk.store import Dynamo, Hold, Lease, Settlement, Store, create_table
from afk.store.ledger import charge_item


def _charges(store: Store, account_id: str, count: int) -> None:
    lease = Lease(id=f"lse_{secrets.token_hex(10)}", account_id=account_id, granted=0,
                  expires_ms=0, reconcile_ms=0, version=1)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for i in range(count):
        hold = Hold(id=f"req_{secrets.token_hex(8)}", account_id=account_id, amount=10**9,
                    model="gpt-4o-mini", endpoint="/v1/chat/completions", key_id="key_a",
                    created_ms=now_ms)
        store.leases.record_charge(lease, charge_item(
            hold, Settlement(charge=1000 + i, provider_cost=500, input_tokens=3,
                             output_tokens=4), now_ms + i))


def test_a_tick_reads_one_batch_and_says_when_more_wait(dynamodb_endpoint: str):
    table = f"afk-poll-{secrets.token_hex(4)}"
    dynamo = Dynamo(table, endpoint_url=dynamodb_endpoint)
    create_table(dynamo.client, table)
    store = Store(dynamo)
    account = "acct_poll"
    _charges(store, account, 3)
    poller = local_poller(store, dynamodb_endpoint, "us-east-1")
    poller._batch_size = 2

    assert poller.poll() == (2, True)  # a full batch: the poller reads on at once
    assert poller.drain() == 1         # the rest, and nothing twice
    assert poller.poll() == (0, False)

    day = datetime.now(UTC).date().isoformat()
    (rollup,) = store.rollups.for_account(account, day, day)
    assert (rollup.totals.requests, rollup.totals.revenue) == (3, 1000 + 1001 + 1002)
