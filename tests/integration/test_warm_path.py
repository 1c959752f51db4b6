"""A warm environment's request path touches DynamoDB once per call: the charge.

Key and account reads, lease renewals, top-ups, rotations and `last_used` all
happen on the process's background worker, ahead of need, so a busy
environment's calls never wait on the store before their first upstream byte.
Every DynamoDB call the gateway makes is recorded with the thread that made
it (botocore's `before-call` event), over a run that outlasts the key and
account caches and the lease several times over.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.settings import Settings
from afk.store import Dynamo, Store
from tests.conftest import Customer
from tests.support.servers import serve

# Alone: the background refresh must beat a 1.5 s window (tests/README.md).
pytestmark = pytest.mark.alone

# Key and account views are due for a background re-read after half the TTL and
# expire after all of it: a call must come in between, so the half TTL is kept well
# above one call's time on a loaded machine (at 0.5 s a slow call skipped it).
CACHE_TTL = 3.0
LEASE_SECONDS = 4.0  # renewed in its last second
RUN_SECONDS = 10.0


class ThreadLog:
    """DynamoDB operations by whether the background worker made them."""

    def __init__(self, client) -> None:
        self.foreground: Counter[str] = Counter()
        self.background: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.dynamodb.*", self._record)

    def _record(self, model, **_) -> None:
        worker = threading.current_thread().name.startswith("afk-background")
        with self._lock:
            (self.background if worker else self.foreground)[model.name] += 1

    def take(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            taken = (self.foreground, self.background)
            self.foreground, self.background = Counter(), Counter()
            return taken


@pytest.fixture
def warm_gateway(settings: Settings, dynamodb_endpoint: str):
    store = Store(Dynamo(settings.table, endpoint_url=dynamodb_endpoint))
    gateway = Gateway(replace(settings, cache_ttl=CACHE_TTL, lease_seconds=LEASE_SECONDS),
                      store=store)
    log = ThreadLog(store.dynamo.client)
    with serve(create_app("local", gateway)) as url:
        yield gateway, url, log


def test_a_busy_environment_writes_one_charge_per_call_and_nothing_else(
        warm_gateway, make_customer, fake_openai) -> None:
    gateway, url, log = warm_gateway
    customer: Customer = make_customer("5")
    client = replace(customer, url=url).openai()

    def call() -> None:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content

    call()  # cold: reads the key and the account, grants the lease
    gateway.background.drain()
    cold, _ = log.take()
    assert cold["GetItem"] >= 2 and cold["TransactWriteItems"] == 1

    calls = 0
    until = time.monotonic() + RUN_SECONDS
    while time.monotonic() < until:
        call()
        calls += 1
        time.sleep(0.1)
    gateway.background.drain()
    foreground, background = log.take()

    # The request path: one PutItem per call (its charge), nothing else at all.
    assert foreground == Counter(PutItem=calls)
    # The worker kept the caches and the lease fresh while the calls ran: the run
    # outlasted the cache TTL and the lease several times.
    assert background["GetItem"] >= 2 * RUN_SECONDS / CACHE_TTL
    assert background["TransactWriteItems"] >= RUN_SECONDS / LEASE_SECONDS - 1
    assert len(fake_openai.requests) == calls + 1

    gateway.wallet.release()
    customer.assert_books_balance()
    assert len(customer.charges()) == calls + 1
