"""One busy account on DynamoDB's real semantics (issue 11's scenario).

`python -m bench.money_at_scale` from the repository root (`make bench` runs
it). Four gateway processes (as four environments) on one table behind the
DynamoDB-semantics layer (tests/fakes/dynamodb_semantics.py: 4 ms per
single-item call, 15 ms per transaction, transaction conflicts, 1,000 WCU/s
per partition key); N concurrent clients each stream ~1 s chat completions
back to back for DURATION seconds. Prints one JSON line per N and writes
bench/out/money_at_scale.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.fakes.dynamodb_semantics import DynamoDBSemantics
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.integration.test_money_at_scale import SERVER, _port, _up
from tests.support.servers import serve

from afk.local.dynamodb import EmbeddedDynamoDB
from afk.store import Dynamo, Store, create_table
from afk.sweeper import sweep

DURATION = float(os.environ.get("BENCH_MONEY_SECONDS", "30"))
PROCESSES = 4


class OneSecondStreams(FakeOpenAI):
    def default_reply(self) -> Reply:
        return Reply(text=" ".join(f"w{i}" for i in range(20)), chunk_delay=0.05,
                     prompt_tokens=40)


async def _client(client: httpx.AsyncClient, url: str, key: str, until: float,
                  out: list[tuple[int, str]]) -> None:
    while time.monotonic() < until:
        try:
            await _one(client, url, key, out)
        except httpx.TransportError:
            out.append((0, ""))  # the connection to the gateway broke: a failure


async def _one(client: httpx.AsyncClient, url: str, key: str,
               out: list[tuple[int, str]]) -> None:
    async with client.stream("POST", f"{url}/v1/chat/completions",
                             headers={"authorization": f"Bearer {key}"},
                             json={"model": "gpt-4o-mini", "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]}) as r:
        body = (await r.aread()).decode()
        ok = r.status_code == 200 and body.rstrip().endswith("[DONE]")
        out.append((200 if ok else r.status_code or 599, r.headers.get("x-afk-request-id", "")))


async def _load(urls: list[str], key: str, n: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    until = time.monotonic() + DURATION
    limits = httpx.Limits(max_connections=n * 2, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(_client(client, urls[i % len(urls)], key, until, out)
                               for i in range(n)))
    return out


def run(n: int) -> dict[str, object]:
    table = f"afk-bench-{n}"
    with EmbeddedDynamoDB() as db, DynamoDBSemantics(db.endpoint) as proxy:
        create_table(Dynamo(table, endpoint_url=proxy.endpoint).client, table)
        store = Store(Dynamo(table, endpoint_url=proxy.endpoint))
        account = store.accounts.create("busy", credits=100 * 10**12)
        key, _ = store.keys.create(account.id, "bench")
        with serve(OneSecondStreams().app) as upstream:
            ports = [_port() for _ in range(PROCESSES)]
            procs = [subprocess.Popen([sys.executable, "-c", SERVER, proxy.endpoint, upstream,
                                       str(p), table]) for p in ports]
            try:
                urls = [f"http://127.0.0.1:{p}" for p in ports]
                for url in urls:
                    while not _up(url):
                        time.sleep(0.1)
                proxy.reset()
                results = asyncio.run(_load(urls, key, n))
                counters = proxy.counters()
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(timeout=30)
        charges = {e.request_id for e in store.ledger.all_entries(account.id)
                   if e.type == "charge"}
        sweep(store.leases, now_ms=2**42, account_id=account.id)
        after = store.leases.statement(account.id)
    ok = [rid for status, rid in results if status == 200]
    partition = f"{table}|ACCOUNT#{account.id}"
    return {
        "concurrency": n, "requests": len(results), "failed": len(results) - len(ok),
        "completed_unbilled": len(set(ok) - charges),
        "conflicts": counters.conflicts, "cancellations": counters.cancellations,
        "throttles": counters.throttles,
        "account_partition_wcu_per_call": round(
            counters.write_units.get(partition, 0) / max(1, len(results)), 4),
        "account_item_bytes": counters.largest_item_sizes.get(partition, 0),
        "open_leases_after_reconcile": len(after.leases),
        "books_exact": after.account.balance + after.account.charged
        == after.account.credited and after.account.leased == 0,
    }


def main() -> None:
    rows = [run(n) for n in (10, 50, 200)]
    for row in rows:
        print(json.dumps(row), flush=True)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "money_at_scale.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
