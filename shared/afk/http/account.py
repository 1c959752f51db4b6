"""`/v1/account/...`: balance, caps and keys (usage: http/usage.py). What the dashboard reads and
writes, and what anyone can script. Each route parses, calls one operation of
afk.management (in a worker thread: they read and write the store), renders."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool

from afk.errors import InvalidRequest
from afk.http.api import GatewayOf, Manager, api_router
from afk.http.bodies import Cap, KeyLimits, NewKey
from afk.management import render_account, render_key
from afk.money import format_usd

router = api_router("account")


@router.get("/v1/account", response_model=None,
            summary="The account's balance, held credit and caps")
async def get_account(principal: Manager, gateway: GatewayOf) -> dict[str, Any]:
    statement = await run_in_threadpool(gateway.management.statement, principal.account_id)
    return render_account(statement)


@router.put("/v1/account/caps/{model_id:path}", response_model=None,
            summary="Set a model's per-call cap")
async def put_cap(model_id: str, body: Cap, principal: Manager,
                  gateway: GatewayOf) -> dict[str, Any]:
    await run_in_threadpool(gateway.management.set_cap, principal.account_id, model_id,
                            body.usd)
    return {"object": "cap", "model": model_id, "usd": format_usd(body.usd)}


@router.delete("/v1/account/caps/{model_id:path}", response_model=None,
               summary="Clear a model's per-call cap")
async def delete_cap(model_id: str, principal: Manager, gateway: GatewayOf) -> dict[str, Any]:
    await run_in_threadpool(gateway.management.set_cap, principal.account_id, model_id, None)
    return {"object": "cap", "model": model_id, "usd": None, "deleted": True}


@router.get("/v1/account/keys", response_model=None,
            summary="The account's keys, with their limits and spend")
async def list_keys(principal: Manager, gateway: GatewayOf) -> dict[str, Any]:
    keys = await run_in_threadpool(gateway.management.keys, principal.account_id)
    return {"object": "list", "data": [render_key(k, spend) for k, spend in keys]}


@router.post("/v1/account/keys", response_model=None,
             status_code=201, summary="Create a key (shown once)")
async def create_key(principal: Manager, gateway: GatewayOf,
                     body: NewKey | None = None) -> dict[str, Any]:
    """A new key. It carries the creating key's operator limits: a key cannot
    mint its way out of what the operator set on it."""
    body = body or NewKey()
    key, record = await run_in_threadpool(lambda: gateway.management.create_key(
        principal.account_id, body.name, scope=body.scope, changes=body.changes(),
        by_key=principal.key_id))
    return {**render_key(record), "key": key}


@router.patch("/v1/account/keys/{key_id}", response_model=None,
              summary="Change the account's own limits on a key")
async def update_key(key_id: str, body: KeyLimits, principal: Manager,
                     gateway: GatewayOf) -> dict[str, Any]:
    """The fields sent, null lifting one. The operator's limits stay whatever is sent."""
    changes = body.changes()
    if not changes:
        raise InvalidRequest('Send the limits to change, e.g. {"rpm": 600, "spend_per_day": '
                             '"5.00"}; null lifts one of yours.', param="rpm")
    record = await run_in_threadpool(lambda: gateway.management.limit_key(
        key_id, changes, owner="own", account_id=principal.account_id))
    return render_key(record)


@router.delete("/v1/account/keys/{key_id}", response_model=None, summary="Revoke a key for good")
async def revoke_key(key_id: str, principal: Manager, gateway: GatewayOf) -> dict[str, Any]:
    record = await run_in_threadpool(lambda: gateway.management.revoke_key(
        key_id, account_id=principal.account_id))
    return render_key(record)
