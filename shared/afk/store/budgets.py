"""Per-key spend budgets: what a key with a spend limit may still reserve in the
current UTC day and month, exact under any concurrency.

A key with a spend limit draws credit leases of its own (billing/wallet.py),
and each grant or top-up of such a lease reserves its amount against the
key's period items in the same transaction, conditionally:

  BUDGET#<key_id> / DAY#<yyyy-mm-dd>    used: Σ granted to the key's open leases
  BUDGET#<key_id> / MONTH#<yyyy-mm>           of the period + Σ charges of its
                                              closed ones (pico-USD); limit: the
                                              last limit a grant was checked on

The condition `used <= limit − amount` makes a grant fail when it would pass
the limit; a call is reserved in memory only against its lease, and a lease
never grants more than it was given, so Σ charges ≤ used ≤ limit always.
Closing a lease gives back its unused money (`used −= granted − Σ charges`)
in the close transaction. These items are written per lease (grant, top-up,
close), never per call, like the account item.

Period boundary: a call counts toward the UTC day and month in which it was
reserved. A budgeted lease expires at the end of its period (day, or month
for a monthly limit only), so no call is reserved against a period that has
ended; a call reserved at 23:59:59 that finishes after midnight counts toward
the day it started in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from afk.records import dataclass
from afk.store.dynamo import n, s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

DAY_TTL_S = 40 * 86_400
MONTH_TTL_S = 400 * 86_400


@dataclass(frozen=True, slots=True)
class Budget:
    """The spend limits a call's key carries, for the period the call is in."""

    key_id: str
    periods: tuple[tuple[str, int], ...]  # (period SK, limit in pico-USD), day first
    ends_ms: int                          # when the first of these periods ends

    @classmethod
    def of(cls, key_id: str, per_day: int | None, per_month: int | None,
           now_ms: int) -> Budget | None:
        if per_day is None and per_month is None:
            return None
        moment = datetime.fromtimestamp(now_ms / 1000, UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        periods: list[tuple[str, int]] = []
        ends = next_month
        if per_day is not None:
            periods.append((f"DAY#{day:%Y-%m-%d}", per_day))
            ends = day + timedelta(days=1)
        if per_month is not None:
            periods.append((f"MONTH#{month:%Y-%m}", per_month))
        return cls(key_id, tuple(periods), int(ends.timestamp() * 1000))

    @property
    def period_ids(self) -> tuple[str, ...]:
        return tuple(period for period, _ in self.periods)

    def describe(self, period: str) -> str:
        """How a person names the limit of `period`: "per day (2026-12-02, UTC)"."""
        kind, _, when = period.partition("#")
        return f"per {'day' if kind == 'DAY' else 'month'} ({when}, UTC)"


def budget_key(key_id: str, period: str) -> dict[str, Any]:
    return {"PK": s(f"BUDGET#{key_id}"), "SK": s(period)}


def reserve_write(table: str, key_id: str, period: str, limit: int, amount: int,
                  now_s: int) -> TransactWriteItemTypeDef:
    """A transaction item: `amount` more reserved against the period, if it fits."""
    room = limit - amount
    condition = "used <= :room" if room < 0 else "attribute_not_exists(used) OR used <= :room"
    ttl = DAY_TTL_S if period.startswith("DAY#") else MONTH_TTL_S
    return {"Update": {
        "TableName": table, "Key": budget_key(key_id, period),
        "UpdateExpression": ("SET used = if_not_exists(used, :z) + :a, #l = :limit, "
                             "expires_at = :x"),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#l": "limit"},
        "ExpressionAttributeValues": {":z": n(0), ":a": n(amount), ":room": n(room),
                                      ":limit": n(limit), ":x": n(now_s + ttl)},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}


def release_write(table: str, key_id: str, period: str,
                  amount: int) -> TransactWriteItemTypeDef:
    """A transaction item: a closing lease's unused money back to the period."""
    return {"Update": {
        "TableName": table, "Key": budget_key(key_id, period),
        "UpdateExpression": "SET used = used - :r",
        "ExpressionAttributeValues": {":r": n(amount)}}}


@dataclass(frozen=True, slots=True)
class OverBudget:
    """A grant the key's spend limit could not cover."""

    budget: Budget
    period: str
    limit: int
    used: int  # Σ granted to the key's open leases and charged by closed ones, this period

    @property
    def room(self) -> int:
        return max(0, self.limit - self.used)
