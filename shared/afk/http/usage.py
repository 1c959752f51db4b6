"""`/v1/account/usage...`: the ledger page by page, its totals, and its CSV export.

* `GET /v1/account/usage`: entries newest first, `limit` at a time; `next_cursor`
  pages on (`?cursor=`), so every entry of any range can be read.
* `GET /v1/account/usage/summary`: totals by day, model or key over whole UTC
  days, from the rollups the aggregator keeps (store/rollups.py): exact at any
  volume, never a sum of "the latest N entries".
* `GET /v1/account/usage/export`: every entry of the range as CSV, streamed as
  it is read.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import StreamingResponse

from afk.auth import Principal
from afk.billing.money import format_usd
from afk.errors import InvalidRequest
from afk.gateway import Gateway
from afk.http.common import CompactJSONResponse, authenticate, gateway_of
from afk.http.routing import Router
from afk.store import LedgerEntry
from afk.store.rollups import Totals

router = Router()

MAX_USAGE_LIMIT = 1000
MAX_SUMMARY_DAYS = 366
DEFAULT_SUMMARY_DAYS = 30
GROUPS = ("day", "model", "key")
KINDS = ("charge", "credit", "debit")


def render_entry(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "object": "ledger.entry", "id": entry.id, "type": entry.type,
        "request_id": entry.request_id, "created": entry.created, "model": entry.model,
        "endpoint": entry.endpoint, "key_id": entry.key_id,
        "input_tokens": entry.input_tokens, "cached_input_tokens": entry.cached_input_tokens,
        "output_tokens": entry.output_tokens, "reasoning_tokens": entry.reasoning_tokens,
        "cost": format_usd(entry.amount) if entry.type == "charge" else "0.00",
        "credit": format_usd(entry.amount) if entry.type == "credit" else
        format_usd(-entry.amount) if entry.type == "debit" else "0.00",
        "status": entry.status, "estimated": entry.estimated, "note": entry.note,
        "web_searches": entry.web_searches, "web_search_cost": format_usd(entry.web_search_cost),
        "provider": entry.provider,  # the deployment that served the call
    }


def _gateway(request: Request) -> Gateway:
    return gateway_of(request)


def _date_ms(value: str | None, name: str, *, end: bool = False) -> int | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an ISO date such as 2026-11-28.",
                             param=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return ms + 86_400_000 - 1 if end and len(value) == 10 else ms


def _own_key(principal: Principal) -> str | None:
    """An inference key sees its own calls only; a manage key the account's."""
    return principal.key_id if principal.scope != "manage" else None


def _filters(request: Request, principal: Principal) -> dict[str, Any]:
    params = request.query_params
    kind = params.get("type") or None
    if kind is not None and kind not in KINDS:
        raise InvalidRequest(f"'type' must be one of {', '.join(KINDS)}.", param="type")
    return {"model": params.get("model") or None, "kind": kind,
            "key_id": _own_key(principal) or params.get("key_id") or None,
            "since_ms": _date_ms(params.get("since"), "since"),
            "until_ms": _date_ms(params.get("until"), "until", end=True)}


def encode_cursor(entry: LedgerEntry) -> str:
    return base64.urlsafe_b64encode(f"{entry.created_ms}:{entry.id}".encode()).decode()


def decode_cursor(value: str) -> tuple[int, str]:
    try:
        ms, _, entry_id = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
        if not ms.isdigit() or not entry_id:
            raise ValueError
        return int(ms), entry_id
    except ValueError:
        raise InvalidRequest("'cursor' is not a cursor this API returned.",
                             param="cursor") from None


@router.get("/v1/account/usage")
async def get_usage(request: Request) -> CompactJSONResponse:
    principal = await authenticate(request)
    params = request.query_params
    raw_limit = params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_USAGE_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_USAGE_LIMIT}.",
                             param="limit")
    limit = int(raw_limit)
    before = decode_cursor(params["cursor"]) if params.get("cursor") else None
    filters = _filters(request, principal)
    # One more than asked: whether there is a next page, without a second round trip.
    entries = await anyio.to_thread.run_sync(lambda: _gateway(request).store.ledger.entries(
        principal.account_id, limit=limit + 1, before=before, **filters))
    page, more = entries[:limit], len(entries) > limit
    return CompactJSONResponse({"object": "list", "data": [render_entry(e) for e in page],
                                "has_more": more,
                                "next_cursor": encode_cursor(page[-1]) if more else None})


# ------------------------------------------------------------ summary
def _day(value: str | None, name: str, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a UTC date such as 2026-11-28 (the summary "
                             "counts whole days).", param=name) from None


def render_totals(totals: Totals) -> dict[str, Any]:
    """What the customer sees of a rollup: their spend, never the provider's cost."""
    return {"requests": totals.requests, "input_tokens": totals.input_tokens,
            "cached_input_tokens": totals.cached_input_tokens,
            "output_tokens": totals.output_tokens, "reasoning_tokens": totals.reasoning_tokens,
            "cost": format_usd(totals.revenue), "credits": format_usd(totals.credits),
            "debits": format_usd(totals.debits)}


@router.get("/v1/account/usage/summary")
async def get_summary(request: Request) -> CompactJSONResponse:
    principal = await authenticate(request)
    params = request.query_params
    group_by = params.get("group_by", "day")
    if group_by not in GROUPS:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUPS)}.",
                             param="group_by")
    until = _day(params.get("until"), "until", datetime.now(UTC).date())
    since = _day(params.get("since"), "since", until - timedelta(days=DEFAULT_SUMMARY_DAYS - 1))
    if since > until:
        raise InvalidRequest("'since' must not be after 'until'.", param="since")
    if (until - since).days >= MAX_SUMMARY_DAYS:
        raise InvalidRequest(f"A summary covers at most {MAX_SUMMARY_DAYS} days.",
                             param="since")
    rollups = await anyio.to_thread.run_sync(
        _gateway(request).store.rollups.for_account, principal.account_id,
        since.isoformat(), until.isoformat())
    groups: dict[str, Totals] = {}
    if group_by == "day":  # every day of the range, quiet ones too (a chart's x axis)
        groups = {(since + timedelta(days=i)).isoformat(): Totals()
                  for i in range((until - since).days + 1)}
    own = _own_key(principal)
    total = Totals()
    for rollup in rollups:
        if own is not None and rollup.key_id != own:
            continue
        total.add(rollup.totals)
        name = {"day": rollup.day, "model": rollup.model, "key": rollup.key_id}[group_by]
        if group_by != "day" and not name:
            continue  # credits and debits belong to no model or key: in the total only
        groups.setdefault(name, Totals()).add(rollup.totals)
    data = [{group_by: name, **render_totals(totals)} for name, totals in sorted(groups.items())]
    return CompactJSONResponse({"object": "usage.summary", "since": since.isoformat(),
                                "until": until.isoformat(), "group_by": group_by,
                                "data": data, "total": render_totals(total)})


# ------------------------------------------------------------ export
CSV_COLUMNS = ("created", "type", "id", "request_id", "model", "endpoint", "key_id",
               "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
               "cost", "credit", "status", "estimated", "note")


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def csv_rows(entries: Iterator[LedgerEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    for count, entry in enumerate(entries, 1):
        row = render_entry(entry)
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
        if count % 200 == 0:
            yield flush()
    yield flush()


@router.get("/v1/account/usage/export")
async def export_usage(request: Request) -> StreamingResponse:
    principal = await authenticate(request)
    filters = _filters(request, principal)
    entries = _gateway(request).store.ledger.iterate(principal.account_id, **filters)
    # A sync iterator: Starlette reads it in a worker thread, a page at a time.
    return StreamingResponse(csv_rows(entries), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition":
                                      'attachment; filename="afk-usage.csv"'})
