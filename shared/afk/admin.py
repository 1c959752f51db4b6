"""`afk admin`: the operator's tool for accounts, keys, limits, credits, caps and
usage, working directly on the table.

Which store: AFK_TABLE at AFK_DYNAMODB_ENDPOINT when either is set (AWS with
the usual credentials when only the table is); otherwise the store of an
`afk dev` running from this directory or a parent (`.afk/dev.json`); otherwise
the table `afk` on AWS. Store failures are said in an operator's words: the
endpoint and table tried, and what to check.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from afk import limits as key_limits
from afk.errors import ModelNotFound, StoreUnavailable
from afk.limits import LimitError
from afk.management import (
    Management,
    render_account_for_operator,
    render_entry,
    render_key,
)
from afk.money import MoneyError, format_usd, parse_usd, to_pico
from afk.records import dataclass
from afk.settings import Settings


class AdminError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    """The store `afk admin` works on, and how it was chosen (for error messages)."""

    settings: Settings
    source: str  # "environment" | "afk dev" | "default"

    @property
    def where(self) -> str:
        place = self.settings.dynamodb_endpoint or f"AWS ({self.settings.region})"
        return f"table {self.settings.table!r} at {place}"


def target() -> Target:
    settings = Settings.from_env()
    if settings.store_named:
        return Target(settings, "environment")
    from afk.local import devfile

    dev = devfile.find()
    if dev is not None and dev.alive:
        return Target(replace(settings, dynamodb_endpoint=dev.endpoint, table=dev.table),
                      "afk dev")
    return Target(settings, "default")


def _store(where: Target) -> Any:
    from afk.store import Dynamo, Store

    settings = where.settings
    return Store(Dynamo(settings.table, endpoint_url=settings.dynamodb_endpoint,
                        region=settings.region))


def store_error(where: Target, error: StoreUnavailable) -> str:
    """What an operator needs when the store fails: where, why, what to check."""
    cause = error.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if cause else ""
    detail = "the table does not exist there" if code == "ResourceNotFoundException" \
        else str(cause or error.message)
    hint = {
        "afk dev": "Is `make dev` still running? It published this store in .afk/dev.json.",
        "environment": "Check AFK_DYNAMODB_ENDPOINT and AFK_TABLE (unset both to use a "
                       "running `make dev`), or your AWS credentials and AWS_REGION.",
        "default": "No `make dev` runs from this directory (no .afk/dev.json), so this is "
                   "AWS: start `make dev` here, or set AFK_TABLE (the stack's TableName "
                   "output) with AWS credentials, or AFK_DYNAMODB_ENDPOINT for a local store.",
    }[where.source]
    return f"cannot use the account store, {where.where}: {detail}. {hint}"


def _usd(value: str, what: str, *, allow_zero: bool = True) -> int:
    try:
        return to_pico(parse_usd(value, what=what, allow_zero=allow_zero))
    except MoneyError as exc:
        raise AdminError(str(exc)) from None


def _markup(value: str) -> Any:
    from afk.catalog import CatalogError
    from afk.catalog.schema import parse_markup_percent

    try:
        return parse_markup_percent(value, "--markup")
    except CatalogError as exc:
        raise AdminError(str(exc)) from None


def _days(since: str | None, until: str | None) -> list[str]:
    """The UTC days from `since` to `until` inclusive (default: the last 30)."""
    from datetime import UTC, date, datetime, timedelta

    try:
        last = date.fromisoformat(until) if until else datetime.now(UTC).date()
        first = date.fromisoformat(since) if since else last - timedelta(days=29)
    except ValueError as exc:
        raise AdminError(f"--since/--until must be dates such as 2026-11-28 ({exc})") from None
    if first > last:
        raise AdminError("--since must not be after --until")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _key_json(record: Any, spend: tuple[int, int] | None = None) -> dict[str, Any]:
    rendered = render_key(record, spend)
    rendered.pop("object")
    return {"id": rendered.pop("id"), "account": record.account_id, **rendered}


def _limit_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The limit flags given (`none` lifts one), as Limits changes."""
    given = {api: getattr(args, api) for api in key_limits.FIELDS
             if getattr(args, api, None) is not None}
    body: dict[str, Any] = {api: None if value.lower() == "none" else value
                            for api, value in given.items()}
    if body.get("rpm") is not None and body["rpm"].isdigit():
        body["rpm"] = int(body["rpm"])
    if body.get("models") is not None:
        body["models"] = [m.strip() for m in body["models"].split(",") if m.strip()]
    try:
        return key_limits.parse_changes(body)
    except LimitError as exc:
        raise AdminError(f"--{exc.param.replace('_', '-')}: {exc}") from None


def management(store: Any) -> Management:
    """The operations the account API runs too, on the operator's side."""
    from afk.catalog import Catalog

    return Management(store, lambda: Catalog.load(Settings.from_env().catalog_path))


def run(args: argparse.Namespace, store: Any) -> Any:
    try:
        return _run(args, management(store))
    except ModelNotFound:
        raise AdminError(f"unknown model {args.model!r} (not in the catalog, or not one of "
                         "the account's models)") from None


def _run(args: argparse.Namespace, ops: Management) -> Any:
    store = ops.store

    def account() -> dict[str, Any]:
        return render_account_for_operator(ops.statement(args.account))

    match (args.group, args.action):
        case ("accounts", "create"):
            credits = _usd(args.credits, "credits")
            created = store.accounts.create(args.name, credits=credits)
            return render_account_for_operator(ops.statement(created.id))
        case ("accounts", "list"):
            return [{"id": a.id, "name": a.name, "available": format_usd(a.balance),
                     "held": format_usd(a.leased), "created": a.created}
                    for a in store.accounts.list_all()]
        case ("accounts", "show"):
            return account()
        case ("keys", "create"):
            key, record = ops.create_key(args.account, args.name, scope=args.scope,
                                         changes=_limit_flags(args))
            return {**_key_json(record), "key": key}
        case ("keys", "limit"):
            changes = _limit_flags(args)
            if not changes:
                raise AdminError("name a limit to set: --rpm, --spend-per-day, "
                                 "--spend-per-month, --models or --expires-at (none lifts it)")
            return _key_json(ops.limit_key(args.key_id, changes, owner="operator"))
        case ("keys", "list"):
            return [_key_json(k, spend) for k, spend in ops.keys(args.account)]
        case ("keys", "revoke"):
            return _key_json(ops.revoke_key(args.key_id))
        case ("credits", "add"):
            amount = _usd(args.usd, "credit", allow_zero=False)
            ops.add_credits(args.account, amount, credit_id=args.idempotency_key)
            return account()
        case ("prices", "set"):
            ops.set_markup(args.account, args.model, _markup(args.markup))
            return account()
        case ("prices", "clear"):
            ops.set_markup(args.account, args.model, None)
            return account()
        case ("caps", "set"):
            ops.set_cap(args.account, args.model, _usd(args.usd, "cap", allow_zero=False))
            return account()
        case ("caps", "clear"):
            ops.set_cap(args.account, args.model, None)
            return account()
        case ("report", _):
            from afk.billing.report import report

            return report((r for day in _days(args.since, args.until)
                           for r in store.rollups.for_day(day)), args.by)
        case ("usage", _):
            store.accounts.require(args.account)
            return [render_entry(e) for e in store.ledger.entries(args.account,
                                                                  limit=args.limit)]
    raise AdminError("unknown command")


# ---------------------------------------------------------------- text output
def _cell(value: Any) -> str:
    """One value as people read it: no Python reprs, `-` for nothing."""
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        shown = [f"{k}={_cell(v)}" for k, v in value.items() if v not in (None, [], {})]
        return " ".join(shown) or "-"
    if isinstance(value, list):
        return "; ".join(_cell(v) for v in value)
    return str(value)


def render_text(result: Any) -> str:
    """A record as aligned `name  value` lines; a list as a table."""
    if isinstance(result, dict):
        width = max(map(len, result), default=0)
        return "\n".join(f"{name.ljust(width)}  {_cell(value)}"
                         for name, value in result.items())
    if not result:
        return "(none)"
    columns = [c for c in result[0] if any(_cell(row.get(c)) != "-" for row in result)]
    rows = [[_cell(row.get(c)) for c in columns] for row in result]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
