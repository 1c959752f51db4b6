"""The operator's economics: revenue (what customers were charged), provider cost
(what the providers bill for the same calls) and margin, grouped by day, model or
account, exact to the pico-USD."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from afk.billing.money import format_usd

GROUPS = ("day", "model", "account")


@dataclass(frozen=True, slots=True)
class Usage:
    """Calls of one account and model on one UTC day (a ledger entry is one call)."""

    day: str  # YYYY-MM-DD
    account: str
    model: str
    requests: int
    revenue: int  # pico-USD
    provider_cost: int


@dataclass(slots=True)
class Line:
    group: str
    requests: int = 0
    revenue: int = 0
    provider_cost: int = 0

    @property
    def margin(self) -> int:
        return self.revenue - self.provider_cost

    def render(self, by: str) -> dict[str, object]:
        margin_percent = (str((Decimal(self.margin) * 100 / self.revenue).quantize(
            Decimal("0.01"))) if self.revenue else None)
        return {by: self.group, "requests": self.requests,
                "revenue": format_usd(self.revenue),
                "provider_cost": format_usd(self.provider_cost),
                "margin": format_usd(self.margin), "margin_percent": margin_percent}


def report(usage: Iterable[Usage], by: str) -> list[dict[str, object]]:
    """One line per group (sorted), then the total."""
    if by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}")
    lines: dict[str, Line] = {}
    total = Line("total")
    for row in usage:
        key = getattr(row, by)
        line = lines.setdefault(key, Line(key))
        for target in (line, total):
            target.requests += row.requests
            target.revenue += row.revenue
            target.provider_cost += row.provider_cost
    return [lines[k].render(by) for k in sorted(lines)] + [total.render(by)]
