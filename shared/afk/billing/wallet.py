"""This environment's side of the money protocol: leases held in memory, calls
reserved against them, charges recorded one item per call.

A Lambda environment serves one request at a time; `afk dev` serves many in
one process. Either way one `Wallet` per process keeps, per account, the
lease it is spending from (store/leases.py) and what its calls have reserved
and spent, under a lock:

    available = granted − spent − reserved

* reserve: no I/O while the lease is live and covers the hold. Otherwise one
  transaction grants or tops up the lease: at least what the call needs, at
  most a quarter of the unleased balance unless the call needs more, and
  doubling with use, so a busy environment writes the account item rarely
  and an idle one holds little.
* settle: one PutItem, the call's ledger entry under its lease, idempotent on
  the request id; `last_used` of the key at most once a minute, best effort,
  as its own write.
* A lease is used until `expires_ms` (renewed before then while in use) and
  rotated after `ROTATE_AFTER_S`; nothing reserves against it afterwards.
  The sweeper folds it in after `reconcile_ms` (expiry + the longest call +
  a margin), when no call of it can still be running.

See docs/money.md for the failure analysis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from afk.background import Background
from afk.billing.books import Book, Spending
from afk.errors import StoreUnavailable
from afk.records import dataclass
from afk.store import Account, Hold, Settlement
from afk.store.budgets import Budget, OverBudget
from afk.store.items import iso
from afk.store.keys import Keys
from afk.store.leases import Lease, LeaseGone, Leases, Refused
from afk.store.ledger import charge_item

log = logging.getLogger("afk.wallet")

LEASE_SECONDS = 60.0         # a lease takes new calls for this long, renewed while in use
RENEW_BEFORE_S = 15.0        # renew when less than this is left
ROTATE_AFTER_S = 600.0       # then a fresh lease, so a lease's charges stay few
RECONCILE_MARGIN_S = 120.0   # clock skew and settle time beyond the longest call
LEASE_SHARE = 4              # a grant takes at most 1/LEASE_SHARE of the unleased balance
MIN_CALLS_PER_LEASE = 4      # ... and at least this many of the call's holds, if it can
LAST_USED_EVERY_S = 60.0
ACQUIRE_ATTEMPTS = 6         # transactions one reserve may make (refusals, races)
LOW_WATER_CALLS = 2          # top up in the background when fewer calls' worth are left


@dataclass(frozen=True, slots=True)
class Shortfall:
    """The balance (or, with `over`, the key's spend limit) cannot cover the hold:
    what this environment could spend."""

    account: Account | None  # as the refusal returned it (None: the budget refused)
    spendable: int  # the unleased balance (or the budget's room) plus the live lease's rest
    over: OverBudget | None = None


class Wallet:
    def __init__(self, leases: Leases, keys: Keys | None = None, *, owner: str,
                 max_call_s: float = 900.0, lease_s: float = LEASE_SECONDS,
                 clock: Callable[[], float] = time.time,
                 background: Background | None = None) -> None:
        self._leases = leases
        self._keys = keys
        self._owner = owner
        self._max_call_ms = int(max_call_s * 1000)
        self._lease_ms = int(lease_s * 1000)
        self._renew_before_ms = int(min(RENEW_BEFORE_S, lease_s / 4) * 1000)
        self._books: dict[str, Book] = {}
        self._books_lock = threading.Lock()
        self._unwritten: list[tuple[Lease, dict[str, Any]]] = []  # charges the store refused for now
        self._unwritten_lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self._time = clock
        self.background = background or Background()

    def _book(self, book_id: str) -> Book:
        book = self._books.get(book_id)
        if book is None:
            with self._books_lock:
                book = self._books.setdefault(book_id, Book())
        return book

    @staticmethod
    def _book_id(hold: Hold) -> str:
        """An account's calls share a lease; a key with a spend limit has its own."""
        return hold.account_id if hold.budget is None else \
            f"{hold.account_id}#{hold.budget.key_id}"

    def _books_of(self, account_id: str) -> list[Book]:
        with self._books_lock:
            return [book for book_id, book in self._books.items()
                    if book_id == account_id or book_id.startswith(f"{account_id}#")]

    def _now_ms(self) -> int:
        return int(self._time() * 1000)

    # ------------------------------------------------------------ reserve
    def reserve_local(self, hold: Hold) -> Lease | None:
        """Reserve `hold` against the live lease without any I/O, or None. A lease
        running low (on money, on time, or old enough to rotate) is renewed in the
        background, so a busy environment's calls never wait on the store."""
        lease, low = self._take(hold)
        if low:
            self._refill_soon(hold)
        return lease

    def reserve(self, hold: Hold) -> Lease | Shortfall:
        """Blocking. Reserve `hold`, granting, topping up or renewing the lease as
        needed. A Shortfall reserves nothing."""
        book = self._book(self._book_id(hold))
        with book.growing:
            lease, low = self._take(hold)
            if lease is None:
                with book.lock:
                    spending = book.current
                    if spending is not None and not self._live(spending, hold.budget):
                        book.retire(spending)
                        spending = None
                    available = spending.available if spending is not None else 0
                return self._acquire(book, hold.account_id, spending,
                                     need=max(0, hold.amount - available),
                                     per_call=hold.amount, reserve=hold.amount,
                                     budget=hold.budget)
        if low:
            self._refill_soon(hold)
        return lease

    def _take(self, hold: Hold) -> tuple[Lease | None, bool]:
        """Reserve `hold` on the live lease if it covers it: (the lease or None,
        whether the lease is running low)."""
        book = self._book(self._book_id(hold))
        with book.lock:
            spending = book.current
            if spending is None or not self._live(spending, hold.budget):
                return None, False
            if spending.available < hold.amount:
                return None, False
            spending.reserved += hold.amount
            spending.in_flight += 1
            return spending.lease, self._running_low(spending, hold.amount)

    def _refill_soon(self, hold: Hold) -> None:
        self.background.submit(("lease", self._book_id(hold)), lambda: self._refill(hold))

    def _live(self, spending: Spending, budget: Budget | None = None) -> bool:
        """Calls (of a key with `budget`) may still be reserved against it: a key's
        own lease serves only the periods it was reserved against."""
        periods = budget.period_ids if budget is not None else ()
        return (spending.lease.expires_ms > self._now_ms()
                and self._time() - spending.started < ROTATE_AFTER_S
                and spending.lease.budget_periods == periods)

    def _running_low(self, spending: Spending, per_call: int,
                     budget: Budget | None = None) -> bool:
        renew_at = spending.lease.expires_ms - self._renew_before_ms
        if budget is not None and spending.lease.expires_ms >= budget.ends_ms:
            renew_at = budget.ends_ms  # pinned to its period's end: nothing to renew
        rotate_at = spending.started + ROTATE_AFTER_S - self._renew_before_ms / 1000
        return (spending.available < LOW_WATER_CALLS * per_call
                or self._now_ms() >= renew_at or self._time() >= rotate_at)

    def _refill(self, hold: Hold) -> None:
        """Background: renew, top up or rotate the lease before a call has to wait
        for it. Gives up quietly on a refusal (the balance is low: the next call
        that does not fit finds out on its own path)."""
        account_id, per_call, budget = hold.account_id, hold.amount, hold.budget
        book = self._book(self._book_id(hold))
        with book.growing:
            with book.lock:
                spending = book.current
                if spending is None or not self._live(spending, budget) \
                        or not self._running_low(spending, per_call, budget):
                    return  # gone, or a call's own grant already did it
                rotate = self._time() >= spending.started + ROTATE_AFTER_S \
                    - self._renew_before_ms / 1000
                short = max(0, LOW_WATER_CALLS * per_call - spending.available)
            if rotate:
                self._acquire(book, account_id, None, need=spending.available + short,
                              per_call=per_call, reserve=0, size=spending.lease.granted,
                              budget=budget)
            else:
                self._acquire(book, account_id, spending, need=short, per_call=per_call,
                              reserve=0, budget=budget)
        self._close_idle(book)

    def _acquire(self, book: Book, account_id: str, spending: Spending | None, *,
                 need: int, per_call: int, reserve: int, size: int | None = None,
                 budget: Budget | None = None) -> Lease | Shortfall:
        """With `book.growing` held: one transaction (retried) that grants a new lease
        (`spending` None) or tops up and renews `spending`, so that at least `need`
        more is available; then reserves `reserve` against it under the same lock.
        A lease takes a few calls' worth and doubles with use, never more than a
        quarter of the unleased balance unless the call needs more. A key's own
        lease (`budget`) also fits in what its spend limits have left, and ends
        with the period it was reserved against (store/budgets.py)."""
        granted = size if size is not None else (
            spending.lease.granted if spending is not None else 0)
        target = max(need, MIN_CALLS_PER_LEASE * per_call, granted)
        floor = target * LEASE_SHARE
        now_ms = self._now_ms()
        expires = now_ms + self._lease_ms
        if budget is not None:
            expires = min(expires, budget.ends_ms)
        reconcile = expires + self._max_call_ms + int(RECONCILE_MARGIN_S * 1000)
        for _ in range(ACQUIRE_ATTEMPTS + (len(budget.periods) if budget else 0)):
            try:
                if spending is None:
                    result = self._leases.grant(account_id, target, floor=floor,
                                                expires_ms=expires, reconcile_ms=reconcile,
                                                owner=self._owner, budget=budget)
                else:
                    result = self._leases.extend(spending.lease, target if need else 0,
                                                 floor=floor, expires_ms=expires,
                                                 reconcile_ms=reconcile, budget=budget)
            except LeaseGone:
                with book.lock:
                    if spending is not None:
                        book.retired.pop(spending.lease.id, None)
                        if book.current is spending:
                            book.current = None
                spending, need = None, reserve
                target = max(need, MIN_CALLS_PER_LEASE * per_call)
                floor = target * LEASE_SHARE
                continue
            if isinstance(result, OverBudget):
                available = spending.available if spending is not None else 0
                if result.room < need:
                    return Shortfall(None, result.room + available, over=result)
                target = max(need, min(target, result.room))  # what the limit has left
                continue
            if isinstance(result, Refused):
                balance = result.account.balance
                available = spending.available if spending is not None else 0
                if balance < need:
                    return Shortfall(result.account, balance + available)
                # Take what this call needs, or a quarter of what is left if more.
                target = max(need, min(target, balance // LEASE_SHARE))
                floor = target
                if target == 0:  # only a renewal was needed and the balance is empty
                    floor = 0
                continue
            with book.lock:
                if spending is None:
                    if book.current is not None:  # rotated ahead of time
                        book.retire(book.current)
                    spending = book.current = Spending(result, started=self._time())
                else:
                    spending.lease = result
                if spending.available >= reserve:
                    if reserve:
                        spending.reserved += reserve
                        spending.in_flight += 1
                    return result
                # Calls reserved on the fast path (no lock on `growing`) while this
                # transaction was in flight took part of it: ask for the rest.
                need = reserve - spending.available
            target = max(need, MIN_CALLS_PER_LEASE * per_call)
            floor = target * LEASE_SHARE
        raise StoreUnavailable("The account store is changing too fast to reserve credits "
                               "for this request. Nothing was charged; retry it.")

    def _close_idle(self, book: Book) -> None:
        """Background: fold in retired leases with no call in flight and no charge
        waiting to be written, returning their unused money now rather than at
        reconcile time."""
        with self._unwritten_lock:
            waiting = {lease.id for lease, _ in self._unwritten}
        with book.lock:
            idle = book.take_idle(keep=waiting)
        for spending in idle:
            try:
                self._leases.close(spending.lease)
            except StoreUnavailable:
                log.warning("could not close lease %s; the sweeper will", spending.lease.id)

    # ------------------------------------------------------------ settle
    def settle(self, hold: Hold, settlement: Settlement) -> bool:
        """Blocking. Record the call's charge (durable before this returns, unless
        the store stays down past the retry budget: then it is kept and retried
        with this environment's next settle) and release its hold locally.
        Returns whether the charge is durable."""
        book = self._book(self._book_id(hold))
        with book.lock:
            spending = book.find(hold.lease_id)
            lease = spending.lease if spending is not None else None
        item = charge_item(hold, settlement, self._now_ms())
        charge = int(item["amount"]["N"])
        durable = False
        if lease is not None:
            try:
                self._flush_unwritten()
                self._leases.record_charge(lease, item)
                durable = True
            except StoreUnavailable:
                log.exception("recording the charge of %s failed; kept to retry", hold.id)
                with self._unwritten_lock:
                    self._unwritten.append((lease, item))
        retired_idle = False
        with book.lock:
            spending = book.find(hold.lease_id)
            if spending is not None:
                spending.reserved -= hold.amount
                spending.spent += charge
                spending.in_flight -= 1
                retired_idle = spending is not book.current and spending.in_flight == 0
        if retired_idle:
            self.background.submit(("close", self._book_id(hold)),
                                   lambda: self._close_idle(book))
        if durable and hold.key_id:
            self._touch(hold.account_id, hold.key_id)
        return durable

    def _flush_unwritten(self) -> None:
        with self._unwritten_lock:  # idempotent writes; the lock keeps the list whole
            while self._unwritten:
                lease, item = self._unwritten[0]
                self._leases.record_charge(lease, item)
                self._unwritten.pop(0)

    def _touch(self, account_id: str, key_id: str) -> None:
        """`last_used` at most once a minute per key per environment, in the
        background; best effort (a timestamp is never worth failing a call)."""
        now = self._time()
        keys = self._keys
        if keys is None or now - self._touched.get(key_id, 0.0) < LAST_USED_EVERY_S:
            return
        self._touched[key_id] = now
        self.background.submit(("touch", key_id),
                               lambda: keys.touch(account_id, key_id, iso(int(now * 1000))))

    def in_flight(self, account_id: str) -> int:
        """Calls reserved and not yet settled here (tests, diagnostics)."""
        total = 0
        for book in self._books_of(account_id):
            with book.lock:
                total += book.in_flight()
        return total

    # ------------------------------------------------------------ shutdown
    def release(self, account_id: str | None = None) -> int:
        """Close this environment's idle leases now (shutdown, tests): the unused
        money goes back to the balance at once instead of at reconcile time.
        Leases with calls in flight are left alone. Returns how many closed."""
        self.background.drain()
        self._flush_unwritten()
        closed = 0
        books = self._books_of(account_id) if account_id else list(self._books.values())
        for book in books:
            with book.growing:
                with book.lock:
                    idle = book.take_idle(current=True)
                for spending in idle:
                    closed += self._leases.close(spending.lease)
        return closed
