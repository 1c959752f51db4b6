"""What a key may do: its scope, and the limits on it, by owner.

A key is `inference` (generation routes, model lists, its own usage) or
`manage` (everything the dashboard does as well: keys, caps, the account's
usage, top-ups). Keys made before scopes existed could do everything, so a
key stored without a scope is `manage`: nothing that worked stops working.

Limits have two owners. The operator's (`afk admin keys limit`) no customer
key can change; the customer's own (a manage key, on any key of its account)
can only be stricter. What applies is the stricter of the two, field by field.

    rpm              requests per minute (429 over it)
    per_day          spend per UTC day, pico-USD (402)
    per_month        spend per UTC calendar month, pico-USD (402)
    models           the only models the key may call (403 for others)
    expires_ms       the key stops working then (401)
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from afk.money import MoneyError, format_usd, parse_usd, to_pico
from afk.records import dataclass

SCOPES = ("inference", "manage")
LEGACY_SCOPE = "manage"
MAX_RPM = 1_000_000
FIELDS = {"rpm": "rpm", "spend_per_day": "per_day", "spend_per_month": "per_month",
          "models": "models", "expires_at": "expires_ms"}  # API name -> attribute


class LimitError(ValueError):
    """A limit that cannot be set: `param` names the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    per_day: int | None = None
    per_month: int | None = None
    models: frozenset[str] | None = None
    expires_ms: int | None = None

    def stricter(self, other: Limits) -> Limits:
        """Field by field, whichever of the two allows less."""
        models = self.models if other.models is None else other.models if self.models is None \
            else self.models & other.models
        return Limits(rpm=_least(self.rpm, other.rpm), per_day=_least(self.per_day, other.per_day),
                      per_month=_least(self.per_month, other.per_month), models=models,
                      expires_ms=_least(self.expires_ms, other.expires_ms))

    def looser_than(self, operator: Limits) -> str | None:
        """The API name of the first field of these (a customer's) limits that would
        allow more than the operator's, or None."""
        for api_name, attr in FIELDS.items():
            mine, theirs = getattr(self, attr), getattr(operator, attr)
            if mine is None or theirs is None:
                continue
            if (attr == "models" and not mine <= theirs) or (attr != "models" and mine > theirs):
                return api_name
        return None

    @property
    def spends(self) -> bool:
        return self.per_day is not None or self.per_month is not None

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and now_ms >= self.expires_ms

    def render(self) -> dict[str, Any]:
        """The API's shape: USD as decimal strings, the expiry as an ISO time."""
        return {
            "rpm": self.rpm,
            "spend_per_day": _usd(self.per_day), "spend_per_month": _usd(self.per_month),
            "models": sorted(self.models) if self.models is not None else None,
            "expires_at": iso(self.expires_ms) if self.expires_ms is not None else None,
        }

    def describe(self) -> str:
        """One line for people (`afk admin` text output)."""
        parts = [f"{k}={v if not isinstance(v, list) else ','.join(v) or '(none)'}"
                 for k, v in self.render().items() if v is not None]
        return " ".join(parts) or "none"


NO_LIMITS = Limits()


def _least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _usd(pico: int | None) -> str | None:
    return format_usd(pico) if pico is not None else None


def periods(now_ms: int) -> tuple[str, str, int, int]:
    """The current UTC day and month: their ids (2026-12-02, 2026-12) and the
    milliseconds they started at."""
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return (day.strftime("%Y-%m-%d"), month.strftime("%Y-%m"), int(day.timestamp() * 1000),
            int(month.timestamp() * 1000))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The limit fields present in `body` (API names, as a caller sends them), as
    `Limits` attributes; null lifts a limit. Raises LimitError naming the field."""
    changes: dict[str, Any] = {}
    for api_name, attr in FIELDS.items():
        if api_name in body:
            changes[attr] = _PARSERS[attr](body[api_name], api_name)
    return changes


def parse_scope(value: Any, default: str = "inference") -> str:
    if value is None:
        return default
    if value not in SCOPES:
        raise LimitError("'scope' must be \"inference\" (generation, models, its own usage) "
                         "or \"manage\" (also keys, caps, usage, top-ups).", "scope")
    return str(value)


def _rpm(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_RPM:
        raise LimitError(f"'{name}' must be an integer from 1 to {MAX_RPM}, or null for no "
                         "limit.", name)
    return value


def _spend(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return to_pico(parse_usd(value, what=name, allow_zero=False))
    except MoneyError as exc:
        raise LimitError(f"Invalid '{name}': {exc} (send USD as a decimal string such as "
                         "\"5.00\", or null for no limit).", name) from None


def _models(value: Any, name: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value) \
            or len(value) > 500:
        raise LimitError(f"'{name}' must be a list of model ids, or null for every model.",
                         name)
    return frozenset(value)


def _expires(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise LimitError(f"'{name}' must be an ISO time such as 2027-01-31T00:00:00Z, or "
                         "null for none.", name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


_PARSERS = {"rpm": _rpm, "per_day": _spend, "per_month": _spend, "models": _models,
            "expires_ms": _expires}


def changed(limits: Limits, changes: dict[str, Any]) -> Limits:
    return dataclasses.replace(limits, **changes)
