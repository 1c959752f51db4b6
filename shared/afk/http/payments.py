"""Top-ups: `POST /v1/account/checkout` opens Stripe Checkout for an amount,
`GET /v1/account/topup` says what may be bought, and `POST /webhooks/stripe`
takes Stripe's signed events (afk/payments.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.requests import Request

from afk.billing.money import format_usd, parse_usd, to_pico
from afk.errors import InvalidRequest, RequestTooLarge
from afk.http.common import CompactJSONResponse, authenticate, gateway_of, json_body
from afk.http.routing import Router
from afk.payments import Payments

router = Router()

MAX_EVENT_BYTES = 1024 * 1024


def _payments(request: Request) -> Payments:
    return gateway_of(request).payments


@router.get("/v1/account/topup")
async def get_topup(request: Request) -> CompactJSONResponse:
    await authenticate(request)
    payments = _payments(request)
    settings = request.app.state.gateway.settings
    enabled = await anyio.to_thread.run_sync(lambda: payments.enabled)
    return CompactJSONResponse({
        "object": "topup", "enabled": enabled, "currency": "USD",
        "min": format_usd(to_pico(payments.bounds.minimum)),
        "max": format_usd(to_pico(payments.bounds.maximum)),
        "low_balance": format_usd(to_pico(parse_usd(settings.low_balance_usd)))})


def _return_url(value: Any, request: Request) -> str:
    """Where Checkout sends the buyer back: a page of this gateway, never elsewhere."""
    if not isinstance(value, str):
        raise InvalidRequest("'return_url' must be the dashboard's URL.", param="return_url")
    parts = urlsplit(value)
    host = request.headers.get("host", "")
    if parts.scheme not in ("http", "https") or parts.netloc != host or parts.fragment:
        raise InvalidRequest("'return_url' must be a page of this gateway.",
                             param="return_url")
    return value


@router.post("/v1/account/checkout")
async def create_checkout(request: Request) -> CompactJSONResponse:
    principal = await authenticate(request)
    principal.require("manage")
    body = await json_body(request)
    if not isinstance(body, dict) or "usd" not in body:
        raise InvalidRequest('Send {"usd": "25.00", "return_url": "…"}.', param="usd")
    return_url = _return_url(body.get("return_url"), request)
    session = await anyio.to_thread.run_sync(
        _payments(request).checkout, principal.account_id, body["usd"], return_url)
    return CompactJSONResponse(session, status_code=201)


@router.post("/webhooks/stripe")
async def stripe_webhook(request: Request) -> CompactJSONResponse:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_EVENT_BYTES:
        raise RequestTooLarge("A Stripe event is never this large.")
    payload = await request.body()
    if len(payload) > MAX_EVENT_BYTES:
        raise RequestTooLarge("A Stripe event is never this large.")
    payments = _payments(request)
    event = await anyio.to_thread.run_sync(payments.verify, payload,
                                           request.headers.get("stripe-signature"))
    done = await anyio.to_thread.run_sync(payments.handle, event)
    return CompactJSONResponse({"received": True, "result": done})
