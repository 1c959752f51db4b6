"""A fake Stripe over real HTTP: the API the official SDK calls to open a Checkout
Session, the hosted checkout page a buyer pays on, and webhook deliveries signed
the way Stripe signs them (`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
"<t>.<payload>" with the endpoint secret>`, https://docs.stripe.com/webhooks#verify-manually).

Paying on the page sends `checkout.session.completed` to the webhook URL, then
redirects to the session's success URL, as Stripe does. `refund` and `dispute`
send what Stripe sends when the operator refunds or the buyer disputes;
`redeliver` sends an earlier event again (Stripe's retries), `replay` resends
its very bytes and header (a captured delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

API_KEY = "sk_test_afk_fake"
WEBHOOK_SECRET = "whsec_afk_fake_signing_secret"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


@dataclass
class Delivery:
    event: dict[str, Any]
    payload: bytes
    signature: str
    status: int


@dataclass
class FakeStripe:
    base_url: str = ""
    webhook_url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    api_calls: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------ API
    async def create_session(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"type": "invalid_request_error",
                                           "message": "Invalid API Key provided"}}, 401)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.api_calls.append(form)
        session_id = f"cs_test_{secrets.token_hex(12)}"
        metadata = {k[len("metadata["):-1]: v for k, v in form.items()
                    if k.startswith("metadata[")}
        session = {
            "id": session_id, "object": "checkout.session", "mode": form["mode"],
            "url": f"{self.base_url}/c/pay/{session_id}", "currency": "usd",
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "client_reference_id": form.get("client_reference_id"), "metadata": metadata,
            "payment_status": "unpaid", "status": "open", "payment_intent": None,
            "success_url": form["success_url"], "cancel_url": form["cancel_url"]}
        self.sessions[session_id] = session
        return JSONResponse(session)

    # ------------------------------------------------------------ checkout page
    async def page(self, request: Request) -> Response:
        session = self.sessions[request.path_params["session_id"]]
        dollars = f"{session['amount_total'] / 100:.2f}"  # display only
        return HTMLResponse(
            f"<!doctype html><title>Fake Checkout</title><h1>Pay ${dollars}</h1>"
            f"<form method=post><button id=pay type=submit>Pay</button></form>")

    async def pay(self, request: Request) -> Response:
        session = self.sessions[request.path_params["session_id"]]
        session.update(payment_status="paid", status="complete",
                       payment_intent=f"pi_{secrets.token_hex(12)}")
        await anyio.to_thread.run_sync(self.send, "checkout.session.completed", dict(session))
        return RedirectResponse(session["success_url"], status_code=303)

    # ------------------------------------------------------------ webhooks
    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"evt_{secrets.token_hex(12)}", "object": "event", "type": kind,
                "api_version": "2025-09-30.clover", "created": int(time.time()),
                "livemode": False, "data": {"object": obj}}

    def send(self, kind: str, obj: dict[str, Any]) -> Delivery:
        return self.deliver(self.event(kind, obj))

    def deliver(self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET,
                at: int | None = None) -> Delivery:
        """`event` signed now (a Stripe delivery or redelivery)."""
        payload = json.dumps(event).encode()
        return self.post(event, payload, sign(payload, secret, at))

    def replay(self, delivery: Delivery) -> Delivery:
        """The very bytes and header of an earlier delivery, sent again."""
        return self.post(delivery.event, delivery.payload, delivery.signature)

    def post(self, event: dict[str, Any], payload: bytes, signature: str) -> Delivery:
        with httpx.Client(timeout=30) as client:
            response = client.post(self.webhook_url, content=payload, headers={
                "content-type": "application/json", "stripe-signature": signature})
        delivery = Delivery(event, payload, signature, response.status_code)
        self.deliveries.append(delivery)
        return delivery

    def refund(self, payment_intent: str, cents: int) -> dict[str, Any]:
        return {"id": f"re_{secrets.token_hex(12)}", "object": "refund", "amount": cents,
                "currency": "usd", "payment_intent": payment_intent, "status": "succeeded",
                "charge": f"ch_{secrets.token_hex(12)}"}

    def dispute(self, payment_intent: str, cents: int) -> dict[str, Any]:
        return {"id": f"dp_{secrets.token_hex(12)}", "object": "dispute", "amount": cents,
                "currency": "usd", "payment_intent": payment_intent,
                "status": "needs_response", "charge": f"ch_{secrets.token_hex(12)}"}

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/checkout/sessions", self.create_session, methods=["POST"]),
            Route("/c/pay/{session_id}", self.page, methods=["GET"]),
            Route("/c/pay/{session_id}", self.pay, methods=["POST"]),
        ])
