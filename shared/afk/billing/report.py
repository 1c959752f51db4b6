"""The operator's economics: revenue (what customers were charged), provider cost
(what the providers bill for the same calls) and margin, grouped by day, model or
account, exact to the pico-USD. Read from the operator rollups (one Query per
day; store/rollups.py), never from the ledger's entries one by one."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from afk.money import format_usd
from afk.records import dataclass
from afk.store.rollups import Rollup

GROUPS = ("day", "model", "account")


@dataclass(slots=True)
class Line:
    group: str
    requests: int = 0
    revenue: int = 0        # pico-USD
    provider_cost: int = 0  # pico-USD

    @property
    def margin(self) -> int:
        return self.revenue - self.provider_cost

    def render(self, by: str) -> dict[str, object]:
        percent = (str((Decimal(self.margin) * 100 / self.revenue).quantize(Decimal("0.01")))
                   if self.revenue else None)
        return {by: self.group, "requests": self.requests, "revenue": format_usd(self.revenue),
                "provider_cost": format_usd(self.provider_cost),
                "margin": format_usd(self.margin), "margin_percent": percent}


def report(rollups: Iterable[Rollup], by: str) -> list[dict[str, object]]:
    """One line per group (sorted), then the total (`{by: "total"}`)."""
    if by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}")
    lines: dict[str, Line] = {}
    total = Line("total")
    for rollup in rollups:
        if not rollup.totals.requests:
            continue  # credits only: no revenue
        key = {"day": rollup.day, "model": rollup.model, "account": rollup.account}[by]
        line = lines.setdefault(key, Line(key))
        for target in (line, total):
            target.requests += rollup.totals.requests
            target.revenue += rollup.totals.revenue
            target.provider_cost += rollup.totals.provider_cost
    return [lines[k].render(by) for k in sorted(lines)] + [total.render(by)]
