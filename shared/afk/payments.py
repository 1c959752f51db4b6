"""Self-serve top-ups with Stripe: Checkout for the amount, a signed webhook for the
money. Nothing is credited when a customer comes back from Checkout; only a
webhook Stripe signed credits, and each payment credits once.

* `checkout`: a Checkout Session (mode `payment`, one line of the chosen amount)
  with the account in `client_reference_id` and the metadata of the session and
  of its PaymentIntent.
* `handle` (POST /webhooks/stripe): the event is verified with the endpoint's
  signing secret (the SDK's `WebhookSignature.verify_header`: HMAC-SHA256 over
  `timestamp.payload`, and the timestamp within 5 minutes, so a captured
  delivery cannot be replayed later; https://docs.stripe.com/webhooks#verify-events).
  Stripe delivers at least once and may resend any event
  (https://docs.stripe.com/webhooks#handle-duplicate-events): every effect is
  keyed on the payment, the refund or the dispute, never on the delivery.
  - `checkout.session.completed` (paid) and `checkout.session.async_payment_succeeded`:
    a credit with idempotency key `stripe:<payment intent>` (store/accounts.py:
    the same key with another amount or account is a conflict, never a second
    credit).
  - `refund.created` and `charge.dispute.created`: a debit keyed on the refund or
    dispute id, of the account the payment credited; what the balance cannot
    cover is recorded as debt, never taken below zero.
  - `charge.dispute.closed` with status `won`: the disputed amount credited back
    (repaying debt first), once per dispute.
  Anything else is acknowledged and ignored.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from afk.errors import GatewayError, InvalidRequest
from afk.money import MoneyError, format_usd, parse_usd, to_pico
from afk.records import dataclass
from afk.settings import Settings
from afk.store import Store

log = logging.getLogger("afk.payments")

PICO_PER_CENT = 10**10
SIGNATURE_TOLERANCE_S = 300  # Stripe's own default: older signed deliveries are refused
CREDITING = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class PaymentsUnavailable(GatewayError):
    status = 503
    kind = "api_error"


class BadSignature(GatewayError):
    status = 400
    kind = "invalid_request"


@dataclass(frozen=True, slots=True)
class Bounds:
    minimum: Decimal
    maximum: Decimal

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        return cls(parse_usd(settings.topup_min_usd, what="AFK_TOPUP_MIN_USD"),
                   parse_usd(settings.topup_max_usd, what="AFK_TOPUP_MAX_USD"))

    def check(self, value: object) -> Decimal:
        """A top-up amount: dollars and cents within the operator's bounds."""
        try:
            amount = parse_usd(value, what="amount", allow_zero=False, max_places=2)
        except MoneyError as exc:
            raise InvalidRequest(f"Invalid amount: {exc}.", param="usd") from None
        if not self.minimum <= amount <= self.maximum:
            raise InvalidRequest(f"A top-up is from ${format_usd(to_pico(self.minimum))} to "
                                 f"${format_usd(to_pico(self.maximum))}.", param="usd")
        return amount


class Payments:
    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self.bounds = Bounds.of(settings)

    @property
    def enabled(self) -> bool:
        return bool(self._settings.credential("STRIPE_SECRET_KEY"))

    def _client(self) -> Any:
        import stripe  # deferred: only the payment routes pay for it

        key = self._settings.credential("STRIPE_SECRET_KEY")
        if not key:
            raise PaymentsUnavailable("Top-ups are not set up on this gateway (no "
                                      "STRIPE_SECRET_KEY).", code="payments_not_configured")
        base = self._settings.stripe_api_base
        return stripe.StripeClient(key, base_addresses={"api": base} if base else None,
                                   max_network_retries=2)

    # ------------------------------------------------------------ checkout
    def checkout(self, account_id: str, usd: object, return_url: str) -> dict[str, Any]:
        """A Checkout Session for `usd` of credit; its `url` is where to send the buyer."""
        import stripe

        amount = self.bounds.check(usd)
        cents = int(amount * 100)
        metadata = {"account_id": account_id, "usd": str(amount)}
        try:
            session = self._client().v1.checkout.sessions.create(params={
                "mode": "payment", "client_reference_id": account_id,
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": "usd", "unit_amount": cents,
                    "product_data": {"name": "afk gateway credits"}}}],
                "metadata": metadata, "payment_intent_data": {"metadata": metadata},
                "success_url": _with(return_url, "topup=success"),
                "cancel_url": _with(return_url, "topup=cancelled")})
        except stripe.StripeError as exc:
            log.warning("creating a checkout session failed: %s", type(exc).__name__)
            raise PaymentsUnavailable("Stripe did not open a checkout; nothing was charged. "
                                      "Try again.", code="checkout_failed") from None
        return {"object": "checkout", "id": session.id, "url": session.url,
                "usd": format_usd(to_pico(amount))}

    # ------------------------------------------------------------ webhook
    def verify(self, payload: bytes, signature: str | None) -> Any:
        import stripe

        secret = self._settings.credential("STRIPE_WEBHOOK_SECRET")
        if not secret:
            raise PaymentsUnavailable("Top-ups are not set up on this gateway (no "
                                      "STRIPE_WEBHOOK_SECRET).", code="payments_not_configured")
        try:
            stripe.WebhookSignature.verify_header(payload, signature or "", secret,
                                                  tolerance=SIGNATURE_TOLERANCE_S)
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError):
            raise BadSignature("The webhook signature does not verify.",
                               code="bad_signature") from None
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            raise InvalidRequest("Not a Stripe event.")
        return event

    def handle(self, event: Any) -> str:
        """Apply one verified event. Returns what was done (for the log)."""
        kind, obj = event["type"], event["data"]["object"]
        if kind in CREDITING:
            return self._credit(obj)
        if kind == "refund.created":
            return self._debit(obj.get("payment_intent"), obj["amount"], f"stripe:{obj['id']}",
                               "refund")
        if kind == "charge.dispute.created":
            return self._debit(obj.get("payment_intent"), obj["amount"], f"stripe:{obj['id']}",
                               "dispute")
        if kind == "charge.dispute.closed" and obj.get("status") == "won":
            return self._won(obj)
        return "ignored"

    def _won(self, dispute: Any) -> str:
        """A dispute decided for the operator: Stripe returns the money, so does this."""
        claim = self._store.accounts.credit_claim(f"stripe:{dispute.get('payment_intent')}")
        if claim is None:
            return "unknown payment"
        self._store.accounts.add_credits(claim[0], int(dispute["amount"]) * PICO_PER_CENT,
                                         note="Stripe dispute won",
                                         credit_id=f"stripe:{dispute['id']}:won")
        return "credited (dispute won)"

    def _credit(self, session: Any) -> str:
        if session.get("payment_status") != "paid" or session.get("mode") != "payment":
            return "not paid yet"
        account_id = (session.get("metadata") or {}).get("account_id") or \
            session.get("client_reference_id")
        payment = session.get("payment_intent") or session["id"]
        amount = int(session["amount_total"]) * PICO_PER_CENT
        self._store.accounts.add_credits(account_id, amount, note="Stripe payment",
                                         credit_id=f"stripe:{payment}")
        return "credited"

    def _debit(self, payment: str | None, cents: int, debit_id: str, what: str) -> str:
        claim = self._store.accounts.credit_claim(f"stripe:{payment}") if payment else None
        if claim is None:
            log.warning("a %s of a payment this gateway never credited", what)
            return "unknown payment"
        account_id, _ = claim
        debt = self._store.accounts.debit(account_id, int(cents) * PICO_PER_CENT,
                                          debit_id=debit_id, note=f"Stripe {what}")
        return f"debited ({what}; debt {format_usd(debt)})"


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"
