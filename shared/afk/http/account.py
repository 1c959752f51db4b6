"""`/v1/account/...`: balance, caps and keys (usage: http/usage.py). What the dashboard reads and
writes, and what anyone can script."""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from starlette.requests import Request

from afk import limits as key_limits
from afk.auth import Principal
from afk.billing.money import MoneyError, format_usd, parse_usd, to_pico
from afk.errors import InvalidRequest, ModelNotFound, NotFound, PermissionDenied
from afk.gateway import Gateway
from afk.http.common import CompactJSONResponse, authenticate, gateway_of, json_body
from afk.http.routing import Router
from afk.limits import LimitError, Limits
from afk.store import KeyRecord, Statement

router = Router()


def render_account(statement: Statement) -> dict[str, Any]:
    """`balance` is the credit not yet charged; `held` the part of it reserved for
    calls (credit leases of running environments, in-flight calls included);
    `available` the rest, what a new environment can reserve now."""
    account = statement.account
    return {
        "object": "account", "id": account.id, "name": account.name,
        "currency": account.currency, "balance": format_usd(statement.remaining),
        "held": format_usd(statement.held), "available": format_usd(account.balance),
        "debt": format_usd(account.debt),
        "open_leases": len(statement.leases),
        "caps": {model: format_usd(cap) for model, cap in sorted(account.caps.items())},
        "created": account.created,
    }


def render_key(key: KeyRecord, spend: tuple[int, int] | None = None) -> dict[str, Any]:
    """`limits` is what applies (the stricter of both owners'); `own_limits` the
    account's (a manage key can change them), `operator_limits` the operator's
    (read-only to every customer key)."""
    rendered = {"object": "api_key", "id": key.key_id, "name": key.name, "prefix": key.prefix,
                "created": key.created, "last_used": key.last_used, "status": key.status,
                "scope": key.scope, "rpm": key.rpm, "limits": key.limits.render(),
                "own_limits": key.own.render(), "operator_limits": key.operator.render()}
    if spend is not None:
        rendered["spend"] = {"today": format_usd(spend[0]), "this_month": format_usd(spend[1])}
    return rendered


def _limit_changes(body: dict[str, Any], gateway: Gateway) -> dict[str, Any]:
    try:
        changes = key_limits.parse_changes(body)
    except LimitError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    unknown = sorted(m for m in changes.get("models") or () if gateway.catalog.get(m) is None)
    if unknown:
        raise InvalidRequest(f"'models' names models this gateway does not have: "
                             f"{', '.join(unknown)}.", param="models")
    return changes


def _own_limits(own: Limits, operator: Limits) -> Limits:
    """A customer's limits, refused (403) where they would allow more than the
    operator's: those the customer cannot lift, and should know it cannot."""
    looser = own.looser_than(operator)
    if looser is not None:
        theirs = operator.render()[looser]
        raise PermissionDenied(
            f"The operator limits this key's {looser} to {theirs}; a limit of your own can "
            "only be stricter. Ask the operator to change theirs.", param=looser,
            code="operator_limit")
    return own


def _gateway(request: Request) -> Gateway:
    return gateway_of(request)


async def _manager(request: Request) -> Principal:
    """The caller, if its key may manage the account (403 for an inference key)."""
    principal = await authenticate(request)
    principal.require("manage")
    return principal


@router.get("/v1/account")
async def get_account(request: Request) -> CompactJSONResponse:
    principal = await _manager(request)
    statement = await anyio.to_thread.run_sync(_gateway(request).store.leases.statement,
                                               principal.account_id)
    return CompactJSONResponse(render_account(statement))


def parse_cap(body: Any) -> int:
    if not isinstance(body, dict) or "usd" not in body:
        raise InvalidRequest('Send the cap as {"usd": "0.05"}.', param="usd")
    try:
        amount = parse_usd(body["usd"], what="cap", allow_zero=False)
    except MoneyError as exc:
        raise InvalidRequest(f"Invalid cap: {exc}.", param="usd") from None
    return to_pico(amount)


@router.put("/v1/account/caps/{model_id:path}")
async def put_cap(model_id: str, request: Request) -> CompactJSONResponse:
    gateway = _gateway(request)
    principal = await _manager(request)
    cap = parse_cap(await json_body(request))
    view = await anyio.to_thread.run_sync(gateway.account_view, principal.account_id)
    if model_id not in {m.id for m in gateway.models_for(view)}:
        raise ModelNotFound(model_id)
    await anyio.to_thread.run_sync(gateway.store.accounts.set_cap, principal.account_id,
                                   model_id, cap)
    gateway.forget_account(principal.account_id)
    return CompactJSONResponse({"object": "cap", "model": model_id, "usd": format_usd(cap)})


@router.delete("/v1/account/caps/{model_id:path}")
async def delete_cap(model_id: str, request: Request) -> CompactJSONResponse:
    gateway = _gateway(request)
    principal = await _manager(request)
    view = await anyio.to_thread.run_sync(gateway.account_view, principal.account_id)
    if model_id not in {m.id for m in gateway.models_for(view)}:
        raise ModelNotFound(model_id)
    await anyio.to_thread.run_sync(gateway.store.accounts.clear_cap, principal.account_id,
                                   model_id)
    gateway.forget_account(principal.account_id)
    return CompactJSONResponse({"object": "cap", "model": model_id, "usd": None,
                                "deleted": True})


@router.get("/v1/account/keys")
async def list_keys(request: Request) -> CompactJSONResponse:
    principal = await _manager(request)
    store = _gateway(request).store
    _, _, day_ms, month_ms = key_limits.periods(int(time.time() * 1000))

    def read() -> tuple[list[KeyRecord], dict[str, tuple[int, int]]]:
        return (store.keys.list(principal.account_id),
                store.ledger.spend_by_key(principal.account_id, day_ms=day_ms,
                                          month_ms=month_ms))

    keys, spend = await anyio.to_thread.run_sync(read)
    return CompactJSONResponse({"object": "list", "data": [
        render_key(k, spend.get(k.key_id, (0, 0))) for k in keys]})


@router.post("/v1/account/keys")
async def create_key(request: Request) -> CompactJSONResponse:
    """A new key. It carries the creating key's operator limits: a key cannot
    mint its way out of what the operator set on it."""
    principal = await _manager(request)
    raw = await request.body()
    body = await json_body(request) if raw.strip() else {}
    if not isinstance(body, dict):
        raise InvalidRequest('Send {"name": "…", "scope": "inference", "rpm": 600} '
                             "(all optional).")
    name = body.get("name") or "default"
    if not isinstance(name, str) or len(name) > 100:
        raise InvalidRequest("'name' must be a string of at most 100 characters.",
                             param="name")
    try:
        scope = key_limits.parse_scope(body.get("scope"))
    except LimitError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    store = _gateway(request).store
    creator, _ = await anyio.to_thread.run_sync(store.keys.get, principal.key_id)
    own = _own_limits(key_limits.changed(Limits(), _limit_changes(body, _gateway(request))), creator.operator)
    key, record = await anyio.to_thread.run_sync(lambda: store.keys.create(
        principal.account_id, name, scope=scope, own=own, operator=creator.operator))
    return CompactJSONResponse({**render_key(record), "key": key}, status_code=201)


@router.patch("/v1/account/keys/{key_id}")
async def update_key(key_id: str, request: Request) -> CompactJSONResponse:
    """Change the account's own limits on a key: the fields sent, null lifting one.
    The operator's limits stay whatever is sent."""
    gateway = _gateway(request)
    principal = await _manager(request)
    body = await json_body(request)
    changes = _limit_changes(body, gateway) if isinstance(body, dict) else {}
    if not changes:
        raise InvalidRequest('Send the limits to change, e.g. {"rpm": 600, "spend_per_day": '
                             '"5.00"}; null lifts one of yours.', param="rpm")
    store = gateway.store

    def update() -> KeyRecord:
        record, _ = store.keys.get(key_id)
        if record.account_id != principal.account_id:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        own = _own_limits(key_limits.changed(record.own, changes), record.operator)
        return store.keys.set_limits(key_id, own, owner="own",
                                     account_id=principal.account_id)

    record = await anyio.to_thread.run_sync(update)
    gateway.auth.forget()
    return CompactJSONResponse(render_key(record))


@router.delete("/v1/account/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> CompactJSONResponse:
    gateway = _gateway(request)
    principal = await _manager(request)
    record = await anyio.to_thread.run_sync(
        lambda: gateway.store.keys.revoke(key_id, account_id=principal.account_id))
    gateway.auth.forget()
    return CompactJSONResponse(render_key(record))
