"""The sweeper: folds in leases whose environment stopped using them.

A lease is due once its `reconcile_ms` has passed: its expiry (after which no
call is reserved against it) plus the longest invocation plus a margin, so no
call of it can still be running and no charge can still arrive. Closing it
charges exactly the charges recorded under it and returns the rest to the
balance. The close is conditional on the lease's version, so a sweeper racing
its environment's own close (or renewal), or another sweeper, folds each
lease in exactly once.

Due leases come from a Query of gsi1's sparse `LEASES#<shard>` partitions,
which hold open leases only: the sweeper's cost follows the open leases, not
the table. A call whose environment crashed mid-call (never a timeout: each
function settles before its own deadline) recorded no charge, so it is not
billed: the customer never pays for our crash. That is the only way a call
goes unbilled, and only a call that had not completed (docs/money.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from afk.store import Leases

log = logging.getLogger("afk.sweeper")


def sweep(leases: Leases, *, now_ms: int | None = None,
          account_id: str | None = None) -> dict[str, int]:
    """Close every due lease (of one account, with `account_id`)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    due = [lease for lease in leases.due(now_ms)
           if account_id is None or lease.account_id == account_id]
    closed = 0
    for lease in due:
        if leases.close(lease, due_by_ms=now_ms):
            closed += 1
    log.info("sweep: %d leases due, %d closed here", len(due), closed)
    return {"due": len(due), "closed": closed}


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    from afk.gateway import default_gateway

    return sweep(default_gateway().store.leases)
