"""The dashboard at `/` in headless Chromium: signing in, what the overview and
usage show after a real completion, caps and keys changed from the page and
seen by the API and the upstream, and the page's hygiene (security headers, no
console errors or CSP violations, no request to another origin, phone width,
keyboard use). Screenshots land in test-artifacts/dashboard/."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Customer
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.support.browser import CHROMIUM, DESKTOP, LAPTOP, PHONE, PageWatch, chromium
from tests.support.paths import ROOT

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
TABS = ("overview", "models", "keys", "usage")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"


def shown_usd(amount: str) -> str:
    """How the page shows an API amount: "$" + grouped whole part + the API's own decimals."""
    whole, _, frac = amount.partition(".")
    return f"${int(whole):,}.{frac}"


# Module-scoped, not session-scoped: while playwright's sync API is open it marks its
# event loop as running in the main thread, and later tests calling asyncio.run() fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package "
                    "(`apt-get install -y chromium`, as .ci/run does). The dashboard tests "
                    "never use `playwright install`.", pytrace=False)
    with chromium() as launched:
        yield launched


@dataclass
class Dashboard:
    page: Page
    watch: PageWatch
    label: str
    home: str

    def sign_in(self, key: str) -> None:
        self.page.goto(self.home)
        self.page.locator("#key-input").fill(key)
        self.page.locator("#key-input").press("Enter")
        expect(self.page.locator("#app-view")).to_be_visible()

    def open_tab(self, name: str) -> None:
        self.page.locator(f'[data-tab="{name}"]').click()
        expect(self.page.locator(f"#panel-{name}")).to_be_visible()

    def testid(self, value: str):
        return self.page.get_by_test_id(value)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"{self.label}-{name}.png", full_page=True)

    def horizontal_overflow(self) -> int:
        return self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.fixture
def open_dashboard(browser: Browser, gateway_url: str) -> Iterator:
    """Opens a fresh browser context; on teardown, fails the test if any page logged a
    console error, threw, violated the CSP or asked another origin for anything."""
    opened: list[Dashboard] = []

    def open_(viewport: dict[str, int] = DESKTOP, label: str = "desktop",
              home: str = gateway_url + "/") -> Dashboard:
        context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC",
                                      color_scheme="light")
        context.set_default_timeout(5_000)
        page = context.new_page()
        parts = urlsplit(home)
        watch = PageWatch(f"{parts.scheme}://{parts.netloc}")
        watch.attach(page)
        opened.append(dashboard := Dashboard(page, watch, label, home))
        return dashboard

    yield open_
    problems = {}
    for dashboard in opened:
        problems.update(dashboard.watch.problems(dashboard.page))
        dashboard.page.context.close()
    # The request listener saw the page's own API calls, so an empty list below means something.
    assert all(any("/v1/account" in url for url in d.watch.requests) for d in opened)
    assert not problems, f"the dashboard misbehaved in the browser: {problems}"


def complete(customer_or_key: Customer | str, url: str, fake: FakeOpenAI, **kwargs):
    fake.push(Reply(text="Hello!", prompt_tokens=1200, completion_tokens=300))
    key = customer_or_key if isinstance(customer_or_key, str) else customer_or_key.key
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES,
                                                            **kwargs)


def account_api(customer: Customer, path: str = "/v1/account") -> dict:
    with customer.http() as http:
        response = http.get(path)
        response.raise_for_status()
        return response.json()


def listed_cap(customer: Customer) -> str | None:
    models = {m["id"]: m for m in account_api(customer, "/v1/models")["data"]}
    return models[MODEL]["pricing"]["per_call_cap"]


def test_dashboard_response_sends_security_headers(gateway_url: str):
    response = httpx.get(gateway_url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = dict(directive.strip().split(" ", 1)
               for directive in response.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["script-src"].startswith("'sha256-"), "inline script allowed by hash only"
    assert "unsafe-inline" not in csp["script-src"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["cache-control"] == "no-store"


def test_sign_in_then_a_completion_shows_in_overview_and_usage(open_dashboard, make_customer,
                                                               fake_openai: FakeOpenAI,
                                                               aggregator):
    customer = make_customer("10")
    dashboard = open_dashboard()
    page = dashboard.page
    dashboard.sign_in(customer.key)

    expect(page.locator("#balance")).to_have_text(shown_usd(account_api(customer)["balance"]))
    expect(page.locator("#balance")).to_have_text("$10.00")
    expect(page.locator("#held")).to_have_text("$0.00")
    expect(page.locator("#recent-table")).to_contain_text("No requests yet")

    raw = complete(customer, customer.url, fake_openai)
    request_id = raw.headers["x-afk-request-id"]
    balance = account_api(customer)["balance"]
    assert balance == "9.99964"  # 1,200 × $0.15/M + 300 × $0.60/M

    aggregator.drain()  # the overview's totals come from the usage rollups
    page.locator("#refresh").click()
    expect(page.locator("#balance")).to_have_text(shown_usd(balance))
    [entry] = [e for e in account_api(customer, "/v1/account/usage")["data"]
               if e["type"] == "charge"]
    recent = dashboard.testid(f"recent-row-{entry['id']}")
    expect(recent).to_contain_text(MODEL)
    expect(recent).to_contain_text(request_id)
    expect(recent).to_contain_text("$0.00036")
    expect(page.locator("#range-requests")).to_have_text("1")

    dashboard.open_tab("usage")
    row = page.locator("#usage-table").get_by_test_id(f"usage-row-{entry['id']}")
    expect(row).to_contain_text(request_id)
    expect(row).to_contain_text("1,200")
    expect(row).to_contain_text("$0.00036")
    expect(page.locator("#export-csv")).to_be_enabled()
    with page.expect_download() as download:  # the gateway's export, every entry
        page.locator("#export-csv").click()
    exported = Path(download.value.path()).read_text()
    assert request_id in exported and "opening credit" in exported


@pytest.mark.parametrize("home", ["/", ""], ids=["prod-slash", "prod"])
def test_dashboard_works_at_the_deployed_url_under_the_stage(open_dashboard, staged_url: str,
                                                             make_customer, home: str,
                                                             fake_openai: FakeOpenAI):
    """Regression (issue 12): at the stack's DashboardUrl (`…/prod/`) the page called
    `/v1/account`, outside the stage; API Gateway answers that 403, so signing in
    failed with "Request failed (HTTP 403)". Every call must stay under the stage."""
    origin = staged_url.removesuffix("/prod")
    outside = httpx.get(origin + "/v1/account")
    assert (outside.status_code, outside.json()) == (403, {"message": "Forbidden"})

    customer = make_customer("10")
    request_id = complete(customer, staged_url, fake_openai).headers["x-afk-request-id"]
    dashboard = open_dashboard(home=staged_url + home)
    page = dashboard.page
    dashboard.sign_in(customer.key)
    expect(page.locator("#balance")).to_have_text(shown_usd(account_api(customer)["balance"]))
    expect(page.locator("#recent-table")).to_contain_text(request_id)

    dashboard.open_tab("models")
    dashboard.testid(f"cap-input-{MODEL}").fill("0.02")
    dashboard.testid(f"cap-save-{MODEL}").click()
    expect(dashboard.testid(f"cap-status-{MODEL}")).to_have_text("Cap saved")
    assert listed_cap(customer) == "0.02"

    dashboard.open_tab("keys")
    page.locator("#new-key-name").fill("deployed")
    page.locator("#new-key-scope").select_option("inference")
    page.locator("#create-key").click()
    expect(page.locator("#new-key-box")).to_be_visible()
    assert "deployed" in {k["name"] for k in account_api(customer, "/v1/account/keys")["data"]}

    dashboard.open_tab("usage")
    expect(page.locator("#usage-table")).to_contain_text(request_id)
    calls = [urlsplit(url).path for url in dashboard.watch.requests if "/v1/" in url]
    assert calls and all(path.startswith("/prod/v1/") for path in calls), calls


def test_cap_set_in_models_tab_lowers_max_tokens_upstream_then_clears(
        open_dashboard, customer: Customer, fake_openai: FakeOpenAI):
    dashboard = open_dashboard()
    dashboard.sign_in(customer.key)
    dashboard.open_tab("models")
    cap_input = dashboard.testid(f"cap-input-{MODEL}")

    cap_input.fill("0.001")
    dashboard.testid(f"cap-save-{MODEL}").click()
    expect(dashboard.testid(f"cap-status-{MODEL}")).to_have_text("Cap saved")
    expect(dashboard.testid(f"cap-input-{MODEL}")).to_have_value("0.001")
    assert listed_cap(customer) == "0.001"

    raw = complete(customer, customer.url, fake_openai, max_completion_tokens=10_000)
    sent = fake_openai.requests[-1].body["max_completion_tokens"]
    assert sent < 10_000
    assert raw.headers["x-afk-max-tokens"] == str(sent)

    dashboard.testid(f"cap-clear-{MODEL}").click()
    expect(dashboard.testid(f"cap-status-{MODEL}")).to_have_text("Cap removed")
    expect(dashboard.testid(f"cap-input-{MODEL}")).to_have_value("")
    assert listed_cap(customer) is None
    complete(customer, customer.url, fake_openai)
    assert fake_openai.requests[-1].body["max_completion_tokens"] == 16384


def test_models_tab_lists_only_models_whose_provider_has_a_key(open_dashboard, make_customer,
                                                              keyless_server):
    """Issue 12: on a gateway without Anthropic and Gemini keys, their models are not
    offered (calling one is a 403 naming the missing setting)."""
    customer = make_customer()
    dashboard = open_dashboard(home=keyless_server[2] + "/")
    dashboard.sign_in(customer.key)
    dashboard.open_tab("models")
    expect(dashboard.testid(f"model-row-{MODEL}")).to_be_visible()
    shown = dashboard.page.locator("#models-table tbody tr[data-model]").evaluate_all(
        "rows => rows.map((row) => row.dataset.model)")
    assert MODEL in shown and not any(m.startswith(("claude", "gemini")) for m in shown)


@pytest.mark.parametrize("bad", ["abc", "0", "-1"])
def test_invalid_cap_is_refused_visibly_and_changes_nothing(open_dashboard, customer: Customer,
                                                           bad: str):
    with customer.http() as http:
        http.put(f"/v1/account/caps/{MODEL}", json={"usd": "0.05"}).raise_for_status()
    dashboard = open_dashboard()
    dashboard.sign_in(customer.key)
    dashboard.open_tab("models")
    cap_input = dashboard.testid(f"cap-input-{MODEL}")
    expect(cap_input).to_have_value("0.05")

    cap_input.fill(bad)
    dashboard.testid(f"cap-save-{MODEL}").click()
    error = dashboard.testid(f"cap-error-{MODEL}")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Invalid cap")
    expect(cap_input).to_have_attribute("aria-invalid", "true")
    assert account_api(customer)["caps"] == {MODEL: "0.05"}
    assert listed_cap(customer) == "0.05"


def test_empty_cap_is_refused_before_any_request(open_dashboard, customer: Customer):
    dashboard = open_dashboard()
    dashboard.sign_in(customer.key)
    dashboard.open_tab("models")
    puts = len([u for u in dashboard.watch.requests if "/caps/" in u])
    dashboard.testid(f"cap-save-{MODEL}").click()
    expect(dashboard.testid(f"cap-error-{MODEL}")).to_contain_text("Enter a cap in USD")
    assert len([u for u in dashboard.watch.requests if "/caps/" in u]) == puts
    assert account_api(customer)["caps"] == {}


def test_key_created_in_keys_tab_works_until_revoked(open_dashboard, customer: Customer,
                                                     fake_openai: FakeOpenAI):
    dashboard = open_dashboard()
    page = dashboard.page
    dashboard.sign_in(customer.key)
    dashboard.open_tab("keys")

    page.locator("#new-key-name").fill("ci-bot")
    page.locator("#new-key-scope").select_option("inference")
    page.locator("#create-key").click()
    expect(page.locator("#new-key-box")).to_be_visible()
    new_key = page.locator("#new-key-value").text_content()
    assert new_key and new_key != customer.key
    [record] = [k for k in account_api(customer, "/v1/account/keys")["data"]
                if k["name"] == "ci-bot"]
    assert new_key.startswith(record["prefix"])
    expect(dashboard.testid(f"key-row-{record['id']}")).to_contain_text("Active")

    assert complete(new_key, customer.url, fake_openai).parse().choices[0].message.content

    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    dashboard.testid(f"revoke-{record['id']}").click()
    expect(dashboard.testid(f"key-row-{record['id']}")).to_contain_text("Revoked")
    assert "ci-bot" in dialogs[0]
    with pytest.raises(openai.AuthenticationError):
        complete(new_key, customer.url, fake_openai)
    # Revoking another key leaves this session signed in.
    expect(page.locator("#app-view")).to_be_visible()


def test_declining_the_revoke_dialog_keeps_the_key(open_dashboard, customer: Customer):
    dashboard = open_dashboard()
    dashboard.sign_in(customer.key)
    dashboard.open_tab("keys")
    dashboard.page.once("dialog", lambda dialog: dialog.dismiss())
    dashboard.testid(f"revoke-{customer.key_id}").click()
    expect(dashboard.testid(f"revoke-{customer.key_id}")).to_be_enabled()
    assert account_api(customer, "/v1/account/keys")["data"][0]["status"] == "active"


def test_a_wrong_key_is_refused_with_a_message(open_dashboard):
    dashboard = open_dashboard()
    page = dashboard.page
    page.goto(dashboard.watch.origin + "/")
    page.locator("#key-input").fill("afk-not-a-real-key")
    page.locator("#signin-submit").click()
    expect(page.locator("#signin-message")).to_be_visible()
    expect(page.locator("#signin-message")).to_contain_text("not accepted")
    expect(page.locator("#app-view")).to_be_hidden()


def test_tabs_work_from_the_keyboard(open_dashboard, customer: Customer):
    dashboard = open_dashboard()
    page = dashboard.page
    dashboard.sign_in(customer.key)
    page.locator("body").focus()

    def focused() -> str:
        return page.evaluate("document.activeElement && (document.activeElement.id || '')")

    for _ in range(10):  # from the top of the page, Tab reaches the selected tab
        page.keyboard.press("Tab")
        if focused() == "tab-overview":
            break
    assert focused() == "tab-overview"

    for name in TABS[1:]:
        page.keyboard.press("ArrowRight")
        assert focused() == f"tab-{name}"
        page.keyboard.press("Enter")
        expect(page.locator(f"#panel-{name}")).to_be_visible()
        expect(page.locator(f"#tab-{name}")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-overview")).to_be_visible()
    # Tab leaves the tab list for the panel: one tab stop for the whole list.
    page.keyboard.press("Tab")
    assert focused() == "panel-overview"


def cap_controls_in_view(dashboard: Dashboard) -> bool:
    """True when a model's Save and Clear buttons sit inside the visible part of the
    models table (not scrolled out of its sideways-scrolling wrapper)."""
    return dashboard.page.evaluate("""(id) => {
        const wrap = document.querySelector('#panel-models .table-wrap').getBoundingClientRect();
        return ['cap-save-', 'cap-clear-'].every((t) => {
            const b = document.querySelector(`[data-testid="${t}${id}"]`).getBoundingClientRect();
            return b.left >= wrap.left - 0.5 && b.right <= wrap.right + 0.5;
        });
    }""", MODEL)


@pytest.mark.parametrize("viewport,label", [(DESKTOP, "desktop"), (LAPTOP, "laptop"),
                                            (PHONE, "phone")])
def test_every_tab_fits_the_screen(open_dashboard, make_customer, fake_openai: FakeOpenAI,
                                   viewport: dict[str, int], label: str):
    customer = make_customer("10")
    complete(customer, customer.url, fake_openai)
    with customer.http() as http:
        http.put(f"/v1/account/caps/{MODEL}", json={"usd": "0.05"}).raise_for_status()
    dashboard = open_dashboard(viewport, label)
    page = dashboard.page
    page.goto(dashboard.watch.origin + "/")
    expect(page.locator("#signin-view")).to_be_visible()
    dashboard.screenshot("signin")
    assert dashboard.horizontal_overflow() <= 0
    dashboard.sign_in(customer.key)

    ready = {"overview": page.locator('[data-testid^="recent-row-"]'),
             "models": dashboard.testid(f"model-row-{MODEL}"),
             "keys": dashboard.testid(f"key-row-{customer.key_id}"),
             "usage": page.locator('[data-testid^="usage-row-"]').first}
    for name in TABS:
        dashboard.open_tab(name)
        expect(ready[name]).to_be_visible()
        dashboard.screenshot(name)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= viewport["width"], f"{name} scrolls sideways at {label} width"
        if name == "models":
            # Regression: the Clear button sat beyond the table's right edge at 1280px.
            assert cap_controls_in_view(dashboard), f"cap buttons hidden at {label} width"


def test_usage_pages_past_the_first_thousand_entries(open_dashboard, make_customer):
    """Issue 14: the usage list stopped at the latest 1,000 entries. Paging on past
    them fetches the older ones with the API's cursor."""
    import secrets as token

    from afk.store import Hold, Lease, Settlement
    from afk.store.leases import charge_record
    from afk.store.ledger import charge_item

    customer = make_customer("10")
    lease = Lease(id=f"lse_{token.token_hex(10)}", account_id=customer.account_id,
                  granted=0, expires_ms=0, reconcile_ms=0, version=1)
    start = int(time.time() * 1000) - 10_000
    items = [charge_record(lease, charge_item(
        Hold(id=f"req_{i:05d}_{token.token_hex(4)}", account_id=customer.account_id,
             amount=10**9, model=MODEL, endpoint="/v1/chat/completions",
             key_id=customer.key_id, created_ms=0),
        Settlement(charge=1_000_000, input_tokens=i), start + i)) for i in range(1_001)]
    db = customer.store.dynamo
    for first in range(0, len(items), 25):
        db.client.batch_write_item(RequestItems={db.table: [
            {"PutRequest": {"Item": item}} for item in items[first:first + 25]]})
    oldest = items[0]["request_id"]["S"]

    dashboard = open_dashboard()
    page = dashboard.page
    dashboard.sign_in(customer.key)
    dashboard.open_tab("usage")
    info = page.locator("#usage-page-info")
    # Reading 1,000 entries from moto takes seconds on a busy machine: wait for them.
    expect(info).to_contain_text("of 1,000+", timeout=60_000)
    for _ in range(40):  # 1,000 entries, 25 a page: the 41st page needs the cursor
        page.locator("#usage-next").click()
    # 1,001 charges and the opening credit
    expect(info).to_contain_text("of 1,002", timeout=60_000)
    expect(page.locator("#usage-table")).to_contain_text(oldest)
    expect(page.locator("#usage-next")).to_be_disabled()
