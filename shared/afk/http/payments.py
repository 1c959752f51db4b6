"""Top-ups: `POST /v1/account/checkout` opens Stripe Checkout for an amount,
`GET /v1/account/topup` says what may be bought, and `POST /webhooks/stripe`
takes Stripe's signed events (afk/payments.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from afk.errors import InvalidRequest, RequestTooLarge
from afk.gateway import Gateway
from afk.http.api import Caller, GatewayOf, Manager, api_router
from afk.http.bodies import Checkout
from afk.money import format_usd, parse_usd, to_pico
from afk.payments import Payments

router = api_router("top-ups")

MAX_EVENT_BYTES = 1024 * 1024


async def _payments(gateway: Gateway) -> Payments:
    await gateway.ready()  # the Stripe keys may be in the provider-keys secret
    return gateway.payments


@router.get("/v1/account/topup", response_model=None,
            summary="Whether top-ups are on, and what may be bought")
async def get_topup(_: Caller, gateway: GatewayOf) -> dict[str, Any]:
    payments = await _payments(gateway)
    return {"object": "topup", "enabled": payments.enabled, "currency": "USD",
            "min": format_usd(to_pico(payments.bounds.minimum)),
            "max": format_usd(to_pico(payments.bounds.maximum)),
            "low_balance": format_usd(to_pico(parse_usd(gateway.settings.low_balance_usd)))}


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


@router.post("/v1/account/checkout", response_model=None, status_code=201,
             summary="A Stripe Checkout session for an amount of credit")
async def create_checkout(body: Checkout, request: Request, principal: Manager,
                          gateway: GatewayOf) -> dict[str, Any]:
    return_url = _return_url(body.return_url, request)
    payments = await _payments(gateway)
    return await run_in_threadpool(payments.checkout, principal.account_id, body.usd,
                                   return_url)


@router.post("/webhooks/stripe", response_model=None,
             summary="Stripe's signed events (credits, refunds, disputes)")
async def stripe_webhook(request: Request, gateway: GatewayOf) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_EVENT_BYTES:
        raise RequestTooLarge("A Stripe event is never this large.")
    payload = await request.body()
    if len(payload) > MAX_EVENT_BYTES:
        raise RequestTooLarge("A Stripe event is never this large.")
    payments = await _payments(gateway)
    event = await run_in_threadpool(payments.verify, payload,
                                    request.headers.get("stripe-signature"))
    done = await run_in_threadpool(payments.handle, event)
    return {"received": True, "result": done}
