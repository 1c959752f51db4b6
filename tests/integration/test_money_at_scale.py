"""One busy account on DynamoDB's real semantics: several gateway processes (as
several Lambda environments) on one table behind the semantics layer
(conflicts, per-partition throughput, latency), 200 concurrent streams.

Every request succeeds, every completed call is billed exactly once, the
account item stays small, and once the processes are gone and the leases
reconciled the books balance to the pico-dollar.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from afk.local.dynamodb import EmbeddedDynamoDB
from afk.store import Dynamo, Store, create_table
from afk.sweeper import sweep
from tests.fakes.dynamodb_semantics import DynamoDBSemantics
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.fakes.upstream import wait_until
from tests.support.servers import serve

# Alone: 4 gateway processes and an emulated DynamoDB whose transaction windows
# stretch when other tests starve the CPU (tests/README.md).
pytestmark = pytest.mark.alone

PROCESSES = 4
STREAMS = 200
ROUNDS = 2
TABLE = "afk-scale"
MODEL = "gpt-4o-mini"

SERVER = """
import sys, uvicorn
from dataclasses import replace
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.settings import Settings, Upstream
from afk.store import Dynamo, Store
endpoint, upstream, port, table = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
settings = replace(Settings.from_env({}), table=table, dynamodb_endpoint=endpoint,
                   upstreams={"openai": Upstream(upstream + "/v1", "k")})
gateway = Gateway(settings, store=Store(Dynamo(table, endpoint_url=endpoint)))
uvicorn.run(create_app("local", gateway), host="127.0.0.1", port=port, log_level="warning",
            timeout_keep_alive=75)
"""


class SlowStreams(FakeOpenAI):
    """Every answer streams ten pieces 60 ms apart (~0.6 s), usage at the end."""

    def default_reply(self) -> Reply:
        return Reply(text="one two three four five six seven eight nine ten",
                     chunk_delay=0.06, prompt_tokens=40)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _up(url: str) -> bool:
    try:
        httpx.get(f"{url}/v1/models", timeout=0.5)
        return True
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def semantics() -> Iterator[DynamoDBSemantics]:
    with EmbeddedDynamoDB() as db, DynamoDBSemantics(db.endpoint) as proxy:
        create_table(Dynamo(TABLE, endpoint_url=proxy.endpoint).client, TABLE)
        yield proxy


async def _stream(client: httpx.AsyncClient, url: str, key: str) -> tuple[int, str, str]:
    async with client.stream("POST", f"{url}/v1/chat/completions",
                             headers={"authorization": f"Bearer {key}"},
                             json={"model": MODEL, "stream": True,
                                   "messages": [{"role": "user", "content": "count"}]}
                             ) as response:
        body = (await response.aread()).decode()
        return response.status_code, response.headers.get("x-afk-request-id", ""), body


async def _load(urls: list[str], key: str) -> list[tuple[int, str, str]]:
    limits = httpx.Limits(max_connections=STREAMS * 2, max_keepalive_connections=STREAMS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def worker(i: int) -> list[tuple[int, str, str]]:
            return [await _stream(client, urls[(i + r) % len(urls)], key)
                    for r in range(ROUNDS)]

        results = await asyncio.gather(*(worker(i) for i in range(STREAMS)))
    return [r for batch in results for r in batch]


def test_two_hundred_streams_on_one_account_all_succeed_and_are_billed_exactly(
        semantics: DynamoDBSemantics):
    store = Store(Dynamo(TABLE, endpoint_url=semantics.endpoint))
    account = store.accounts.create("busy", credits=100 * 10**12)
    key, _ = store.keys.create(account.id, "load")
    fake = SlowStreams()
    with serve(fake.app) as upstream:
        ports = [_port() for _ in range(PROCESSES)]
        processes = [subprocess.Popen(
            [sys.executable, "-c", SERVER, semantics.endpoint, upstream, str(port), TABLE],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}) for port in ports]
        try:
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            for url in urls:
                wait_until(lambda url=url: _up(url), timeout=30)
            semantics.reset()
            results = asyncio.run(_load(urls, key))
            during = semantics.counters()
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)  # shutdown returns idle leases
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    # Every request succeeded, with a complete stream.
    statuses = [status for status, _, _ in results]
    failed = [body[:300] for status, _, body in results if status != 200]
    assert failed == [], failed[:3]
    assert statuses == [200] * (STREAMS * ROUNDS)
    assert all(body.rstrip().endswith("data: [DONE]") for _, _, body in results)
    # Every completed call is billed, once.
    charges = [e for e in store.ledger.all_entries(account.id) if e.type == "charge"]
    assert sorted(e.request_id for e in charges) == sorted(rid for _, rid, _ in results)
    assert all(e.amount > 0 and e.status == "ok" and not e.estimated for e in charges)
    # The account item stays small whatever the concurrency; its partition is
    # written per lease, not per call.
    account_partition = f"{TABLE}|ACCOUNT#{account.id}"
    assert during.largest_item_sizes.get(account_partition, 0) < 4096
    calls = STREAMS * ROUNDS
    assert during.write_units.get(account_partition, 0) / calls < 0.5
    assert during.throttles == 0

    # Reconciled: no lease open, and the books balance exactly.
    sweep(store.leases, now_ms=2**42, account_id=account.id)
    statement = store.leases.statement(account.id)
    assert statement.leases == [] and statement.held == 0
    total = sum(e.amount for e in charges)
    after = statement.account
    assert (after.charged, after.leased) == (total, 0)
    assert after.balance + after.charged == after.credited == 100 * 10**12
