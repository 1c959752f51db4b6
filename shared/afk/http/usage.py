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
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from afk.auth import Principal
from afk.errors import InvalidRequest
from afk.http.api import Caller, GatewayOf, api_router
from afk.management import render_entry, render_totals
from afk.store import LedgerEntry
from afk.store.rollups import Totals

router = api_router("usage")

MAX_USAGE_LIMIT = 1000
MAX_SUMMARY_DAYS = 366
DEFAULT_SUMMARY_DAYS = 30


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


class Filters(BaseModel):
    """Which ledger entries: all of them unless narrowed."""

    model: str | None = Field(None, description="one model's entries")
    type: Literal["charge", "credit", "debit"] | None = Field(None, description="one kind")
    key_id: str | None = Field(None, description="one key's calls (a manage key; an "
                                                 "inference key sees only its own)")
    since: str | None = Field(None, description="from this ISO date or time (UTC)")
    until: str | None = Field(None, description="to this ISO date (inclusive) or time")

    def of(self, principal: Principal) -> dict[str, Any]:
        return {"model": self.model or None, "kind": self.type,
                "key_id": _own_key(principal) or self.key_id or None,
                "since_ms": _date_ms(self.since, "since"),
                "until_ms": _date_ms(self.until, "until", end=True)}


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


class Page(Filters):
    limit: int = Field(50, ge=1, le=MAX_USAGE_LIMIT, description="entries per page")
    cursor: str | None = Field(None, description="the previous page's `next_cursor`")


@router.get("/v1/account/usage", response_model=None,
            summary="Ledger entries, newest first, page by page")
async def get_usage(query: Annotated[Page, Query()], principal: Caller,
                    gateway: GatewayOf) -> dict[str, Any]:
    before = decode_cursor(query.cursor) if query.cursor else None
    filters = query.of(principal)
    # One more than asked: whether there is a next page, without a second round trip.
    entries = await run_in_threadpool(lambda: gateway.store.ledger.entries(
        principal.account_id, limit=query.limit + 1, before=before, **filters))
    page, more = entries[:query.limit], len(entries) > query.limit
    return {"object": "list", "data": [render_entry(e) for e in page], "has_more": more,
            "next_cursor": encode_cursor(page[-1]) if more else None}


# ------------------------------------------------------------ summary
def _day(value: str | None, name: str, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a UTC date such as 2026-11-28 (the summary "
                             "counts whole days).", param=name) from None


class Summary(BaseModel):
    group_by: Literal["day", "model", "key"] = "day"
    since: str | None = Field(None, description="first UTC day (default: 29 days before "
                                                "`until`)")
    until: str | None = Field(None, description="last UTC day (default: today)")


@router.get("/v1/account/usage/summary", response_model=None,
            summary="Totals by UTC day, model or key, exact at any volume")
async def get_summary(query: Annotated[Summary, Query()], principal: Caller,
                      gateway: GatewayOf) -> dict[str, Any]:
    group_by = query.group_by
    until = _day(query.until, "until", datetime.now(UTC).date())
    since = _day(query.since, "since", until - timedelta(days=DEFAULT_SUMMARY_DAYS - 1))
    if since > until:
        raise InvalidRequest("'since' must not be after 'until'.", param="since")
    if (until - since).days >= MAX_SUMMARY_DAYS:
        raise InvalidRequest(f"A summary covers at most {MAX_SUMMARY_DAYS} days.",
                             param="since")
    rollups = await run_in_threadpool(gateway.store.rollups.for_account, principal.account_id,
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
    return {"object": "usage.summary", "since": since.isoformat(), "until": until.isoformat(),
            "group_by": group_by, "data": data, "total": render_totals(total)}


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


@router.get("/v1/account/usage/export", response_model=None, response_class=StreamingResponse,
            summary="Every entry of the range as CSV, streamed as it is read")
async def export_usage(query: Annotated[Filters, Query()], principal: Caller,
                       gateway: GatewayOf) -> StreamingResponse:
    entries = gateway.store.ledger.iterate(principal.account_id, **query.of(principal))
    # A sync iterator: Starlette reads it in a worker thread, a page at a time.
    return StreamingResponse(csv_rows(entries), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition":
                                      'attachment; filename="afk-usage.csv"'})
