"""The sweeper: settles holds whose function died before it could.

A hold older than the longest possible invocation (15 minutes, plus a
margin) belongs to a request that can no longer settle it. It is settled
for nothing: the customer is never charged for our failure. The settle is
the same idempotent transaction as the request path's, so a sweeper racing
a late settle, or another sweeper, settles each hold exactly once. It never
relies on DynamoDB TTL deletion.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from afk.store import Ledger, Settlement

log = logging.getLogger("afk.sweeper")

MAX_INVOCATION_MS = 15 * 60 * 1000
MARGIN_MS = 5 * 60 * 1000


def sweep(ledger: Ledger, *, now_ms: int | None = None,
          max_age_ms: int = MAX_INVOCATION_MS + MARGIN_MS) -> dict[str, int]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    stale = ledger.stale_holds(now_ms - max_age_ms)
    settled = 0
    for hold in stale:
        if ledger.settle(hold, Settlement(charge=0, status="expired")):
            settled += 1
    log.info("sweep: %d stale holds, %d settled here", len(stale), settled)
    return {"stale": len(stale), "settled": settled}


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    from afk.gateway import default_gateway

    return sweep(default_gateway().store.ledger)
