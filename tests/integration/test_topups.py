"""Self-serve top-ups (issue 14, part 3) against a fake Stripe over real HTTP (the
official SDK's API base pointed at it, webhooks signed as Stripe signs them):
checkout within the operator's bounds, a paid session credits once, replays and
redeliveries credit nothing, bad or stale signatures are refused, refunds and
disputes take money back without ever taking a balance below zero (the rest is
debt); then the whole flow in Chromium from the dashboard."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect

from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.money import from_pico, parse_usd, to_pico
from afk.settings import Settings
from afk.store import Store
from tests.conftest import Customer
from tests.fakes import fake_stripe
from tests.fakes.fake_stripe import FakeStripe
from tests.support.browser import CHROMIUM, DESKTOP, chromium
from tests.support.servers import serve


@pytest.fixture(scope="module")
def stripe_fake() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    with serve(fake.app) as url:
        fake.base_url = url
        yield fake


@pytest.fixture(scope="module")
def shop(settings: Settings, store: Store, stripe_fake: FakeStripe) -> Iterator[str]:
    """A gateway whose stack secret has Stripe keys, Stripe's API at the fake."""
    keys = {**settings.named_keys, "STRIPE_SECRET_KEY": fake_stripe.API_KEY,
            "STRIPE_WEBHOOK_SECRET": fake_stripe.WEBHOOK_SECRET}
    gateway = Gateway(replace(settings, named_keys=keys, stripe_api_base=stripe_fake.base_url,
                              topup_min_usd="5", topup_max_usd="200", low_balance_usd="3"),
                      store=store)
    with serve(create_app("local", gateway)) as url:
        stripe_fake.webhook_url = f"{url}/webhooks/stripe"
        yield url


@pytest.fixture
def buyer(shop: str, store: Store) -> Customer:
    account = store.accounts.create(f"buyer-{secrets.token_hex(3)}",
                                    credits=to_pico(parse_usd("2")))
    key, record = store.keys.create(account.id, "dashboard", scope="manage")
    return Customer(account.id, key, record.key_id, shop, store)


def _checkout(buyer: Customer, usd: str, **extra) -> httpx.Response:
    with buyer.http() as http:
        return http.post("/v1/account/checkout",
                         json={"usd": usd, "return_url": f"{buyer.url}/", **extra})


def _pay(stripe_fake: FakeStripe, checkout: dict) -> str:
    """The buyer pays on the checkout page: Stripe sends the webhook, then redirects."""
    response = httpx.post(checkout["url"], follow_redirects=False, timeout=30)
    assert response.status_code == 303 and "topup=success" in response.headers["location"]
    delivery = stripe_fake.deliveries[-1]
    assert delivery.status == 200, delivery
    return delivery.event["data"]["object"]["payment_intent"]


def test_checkout_opens_stripe_for_the_amount(buyer: Customer, stripe_fake: FakeStripe):
    response = _checkout(buyer, "25.50")
    assert response.status_code == 201, response.text
    checkout = response.json()
    assert checkout["url"].startswith(stripe_fake.base_url) and checkout["usd"] == "25.50"
    sent = stripe_fake.api_calls[-1]
    assert sent["line_items[0][price_data][unit_amount]"] == "2550"
    assert sent["client_reference_id"] == buyer.account_id
    assert sent["mode"] == "payment"
    assert buyer.balance() == Decimal("2")  # nothing credited before Stripe says so


@pytest.mark.parametrize("usd, problem", [("4.99", "from $5.00 to $200.00"),
                                          ("200.01", "from $5.00"), ("10.001", "decimal"),
                                          ("-5", "greater than zero"), (10.5, "float")])
def test_checkout_outside_the_bounds_is_refused(buyer: Customer, usd, problem: str):
    response = _checkout(buyer, usd)
    assert response.status_code == 400 and problem in response.json()["error"]["message"]


def test_checkout_returns_only_to_this_gateway(buyer: Customer):
    response = _checkout(buyer, "10", return_url="https://evil.example/")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "return_url"


def test_an_inference_key_cannot_buy(buyer: Customer, store: Store):
    key, _ = store.keys.create(buyer.account_id, "ci", scope="inference")
    response = httpx.post(f"{buyer.url}/v1/account/checkout", json={"usd": "10"},
                          headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 403


def test_a_paid_session_credits_once_whatever_is_replayed(buyer: Customer,
                                                          stripe_fake: FakeStripe):
    payment = _pay(stripe_fake, _checkout(buyer, "40").json())
    assert buyer.balance() == Decimal("42")
    paid = stripe_fake.deliveries[-1]
    assert stripe_fake.replay(paid).status == 200          # the captured bytes again
    assert stripe_fake.deliver(paid.event).status == 200   # Stripe's own redelivery
    again = stripe_fake.event("checkout.session.async_payment_succeeded",
                              paid.event["data"]["object"])
    assert stripe_fake.deliver(again).status == 200        # another event, same payment
    assert buyer.balance() == Decimal("42")
    credits = [e for e in buyer.ledger() if e.type == "credit" and e.note == "Stripe payment"]
    assert [from_pico(e.amount) for e in credits] == [Decimal("40")]
    buyer.assert_books_balance()
    # The same payment claimed with another amount is a conflict, never a credit.
    forged = dict(paid.event["data"]["object"], amount_total=999_900)
    assert stripe_fake.send("checkout.session.completed", forged).status == 409
    assert buyer.balance() == Decimal("42") and payment.startswith("pi_")


def test_unsigned_forged_and_stale_events_are_refused(buyer: Customer,
                                                      stripe_fake: FakeStripe):
    session = dict(_checkout(buyer, "50").json(), object="checkout.session",
                   mode="payment", payment_status="paid", amount_total=5000,
                   payment_intent=f"pi_{secrets.token_hex(8)}",
                   metadata={"account_id": buyer.account_id})
    event = stripe_fake.event("checkout.session.completed", session)
    assert stripe_fake.deliver(event, secret="whsec_not_the_endpoints").status == 400
    assert stripe_fake.deliver(event, at=int(time.time()) - 3600).status == 400
    good = stripe_fake.deliver(event)
    tampered = good.payload.replace(b'"amount_total": 5000', b'"amount_total": 900000')
    assert stripe_fake.post(event, tampered, good.signature).status == 400
    unsigned = httpx.post(stripe_fake.webhook_url, content=good.payload)
    assert unsigned.status_code == 400
    assert buyer.balance() == Decimal("52")  # the one good delivery, once


def test_refunds_and_disputes_take_back_never_below_zero(buyer: Customer,
                                                         stripe_fake: FakeStripe):
    payment = _pay(stripe_fake, _checkout(buyer, "20").json())
    assert buyer.balance() == Decimal("22")
    refund = stripe_fake.refund(payment, 500)
    assert stripe_fake.send("refund.created", refund).status == 200
    assert stripe_fake.send("refund.created", refund).status == 200  # redelivered
    assert buyer.balance() == Decimal("17")
    dispute = stripe_fake.dispute(payment, 2000)  # more than is left
    assert stripe_fake.send("charge.dispute.created", dispute).status == 200
    account = buyer.account()
    assert account.balance == 0 and from_pico(account.debt) == Decimal("3")
    with buyer.http() as http:
        shown = http.get("/v1/account").json()
        debits = http.get("/v1/account/usage", params={"type": "debit"}).json()["data"]
    assert (shown["balance"], shown["debt"]) == ("0.00", "3.00")
    assert sorted(d["credit"] for d in debits) == ["-20.00", "-5.00"]
    _assert_books_with_debits(buyer)
    # The next purchase repays the debt first.
    _pay(stripe_fake, _checkout(buyer, "10").json())
    account = buyer.account()
    assert from_pico(account.balance) == Decimal("7") and account.debt == 0
    _assert_books_with_debits(buyer)
    # The operator wins the dispute: Stripe returns the $20, once.
    won = dict(dispute, status="won")
    for _ in range(2):
        assert stripe_fake.send("charge.dispute.closed", won).status == 200
    assert buyer.balance() == Decimal("27")
    lost = dict(stripe_fake.dispute(payment, 100), status="lost")
    assert stripe_fake.send("charge.dispute.closed", lost).status == 200
    assert buyer.balance() == Decimal("27")
    _assert_books_with_debits(buyer)


def _assert_books_with_debits(buyer: Customer) -> None:
    """balance + leased + charged − credited = 0 on the account item, and `credited`
    is the credits less what refunds and disputes took (their amount less the debt)."""
    account = buyer.account()
    assert account.balance >= 0
    assert account.balance + account.leased + account.charged - account.credited == 0
    entries = buyer.ledger()
    credited = sum(e.amount for e in entries if e.type == "credit")
    taken = sum(e.amount for e in entries if e.type == "debit") - account.debt
    assert account.credited == credited - taken


def test_top_up_end_to_end_in_chromium(buyer: Customer, stripe_fake: FakeStripe,
                                       store: Store):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.goto(f"{buyer.url}/")
        page.locator("#key-input").fill(buyer.key)
        page.locator("#key-input").press("Enter")
        expect(page.locator("#topup-card")).to_be_visible()
        # $2 is under the operator's low-balance mark ($3): the notice links to top-up.
        expect(page.locator("#low-balance-notice")).to_be_visible()
        page.locator("#low-balance-link").click()
        expect(page.locator("#topup-amount")).to_be_focused()
        page.locator("#topup-amount").fill("2.5")
        page.locator("#topup-submit").click()
        expect(page.locator("#topup-error")).to_contain_text("from $5.00 to $200.00")

        page.locator("#topup-amount").fill("30")
        page.locator("#topup-submit").click()
        page.wait_for_url(f"{stripe_fake.base_url}/c/pay/*")  # Stripe's checkout page
        expect(page.locator("h1")).to_have_text("Pay $30.00")
        page.locator("#pay").click()
        page.wait_for_url("**/?topup=success")
        expect(page.locator("#topup-status")).to_contain_text("Payment received")
        expect(page.locator("#balance")).to_have_text("$32.00")
        expect(page.locator("#low-balance-notice")).to_be_hidden()

        paid = stripe_fake.deliveries[-1]
        assert stripe_fake.replay(paid).status == 200          # replay: ignored
        assert stripe_fake.deliver(paid.event, secret="whsec_wrong").status == 400
        payment = paid.event["data"]["object"]["payment_intent"]
        assert stripe_fake.send("refund.created", stripe_fake.refund(payment, 1000)).status == 200
        page.locator("#refresh").click()
        expect(page.locator("#balance")).to_have_text("$22.00")
        page.locator('[data-tab="usage"]').click()
        expect(page.locator("#usage-table")).to_contain_text("Purchase")
        expect(page.locator("#usage-table")).to_contain_text("+$30.00")
        expect(page.locator("#usage-table")).to_contain_text("Stripe refund")
        expect(page.locator("#usage-table")).to_contain_text("−$10.00")
        context.close()
    assert buyer.balance() == Decimal("22")
