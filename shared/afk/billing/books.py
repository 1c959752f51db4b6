"""What this environment knows of its credit leases, in memory (billing/wallet.py
keeps one `Book` per account, and one per key with a spend limit).

    available = granted − spent − reserved

Every field is read and written under `Book.lock`; `Book.growing` serializes the
transactions that grant, top up or renew the book's lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import field

from afk.records import dataclass
from afk.store.leases import Lease


@dataclass(slots=True)
class Spending:
    """One lease as this environment uses it."""

    lease: Lease
    reserved: int = 0   # Σ holds of calls in flight
    spent: int = 0      # Σ charges recorded
    in_flight: int = 0
    started: float = field(default_factory=time.time)

    @property
    def available(self) -> int:
        return self.lease.granted - self.spent - self.reserved


@dataclass(slots=True)
class Book:
    lock: threading.Lock = field(default_factory=threading.Lock)
    growing: threading.Lock = field(default_factory=threading.Lock)  # one grant at a time
    current: Spending | None = None
    retired: dict[str, Spending] = field(default_factory=dict)  # rotated, calls in flight

    def find(self, lease_id: str) -> Spending | None:
        """The lease `lease_id`, current or retired (None: closed or never here)."""
        if self.current is not None and self.current.lease.id == lease_id:
            return self.current
        return self.retired.get(lease_id)

    def retire(self, spending: Spending) -> None:
        """Stop reserving against `spending`; it is closed once its last call is
        settled (or by the sweeper, if this environment goes away first)."""
        self.current = None
        self.retired[spending.lease.id] = spending

    def take_idle(self, *, keep: Collection[str] = (), current: bool = False
                  ) -> list[Spending]:
        """Remove and return the retired leases with no call in flight (except those
        in `keep`); with `current`, the current lease too if it has none."""
        idle = [s for s in self.retired.values() if not s.in_flight and s.lease.id not in keep]
        for spending in idle:
            del self.retired[spending.lease.id]
        if current and self.current is not None and not self.current.in_flight:
            idle.append(self.current)
            self.current = None
        return idle

    def in_flight(self) -> int:
        return sum(s.in_flight for s in (*self.retired.values(),
                                         *([self.current] if self.current else [])))
