"""The dashboard's Keys tab in headless Chromium (issue 15): each key's scope, its
limits with the operator's read-only, its spend today and this month; a new key
asks for its scope; the account's own limits edited from the page, and a limit
looser than the operator's refused with the operator's value named."""

from __future__ import annotations

from decimal import Decimal

import openai
from playwright.sync_api import expect

from afk.limits import Limits
from tests.conftest import Customer
from tests.e2e.test_dashboard import ARTIFACTS, account_api, browser, open_dashboard  # noqa: F401

USD = 10**12


def _keys(customer: Customer) -> dict[str, dict]:
    return {k["id"]: k for k in account_api(customer, "/v1/account/keys")["data"]}


def test_keys_tab_shows_scope_limits_by_owner_and_spend(open_dashboard,  # noqa: F811
                                                        customer: Customer):
    with customer.http() as http:
        ci = http.post("/v1/account/keys", json={"name": "ci", "scope": "inference"}).json()
    customer.store.keys.set_limits(ci["id"], Limits(rpm=100, per_day=5 * USD),
                                   owner="operator")
    customer.gateway.auth.forget()
    client = openai.OpenAI(base_url=f"{customer.url}/v1", api_key=ci["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "hello keys tab"}])
    cost = raw.headers["x-afk-cost"]

    dashboard = open_dashboard()
    dashboard.sign_in(customer.key)
    dashboard.open_tab("keys")
    row = dashboard.testid(f"key-row-{ci['id']}")
    expect(row).to_be_visible()
    expect(dashboard.testid(f"scope-{ci['id']}")).to_have_text("Inference")
    expect(dashboard.testid(f"scope-{customer.key_id}")).to_have_text("Manage")
    expect(dashboard.testid(f"spend-today-{ci['id']}")).to_have_text(f"${cost}")
    expect(dashboard.testid(f"spend-month-{ci['id']}")).to_have_text(f"${cost}")
    # One format: a column's amounts share its most decimal places (only zeros added).
    places = max(2, len(cost.partition(".")[2]))
    expect(dashboard.testid(f"spend-today-{customer.key_id}")).to_have_text(
        "$0." + "0" * places)
    rpm = dashboard.testid(f"limit-rpm-{ci['id']}")
    expect(rpm).to_have_text("100 rpmoperator")
    expect(rpm).to_have_attribute("title", "Set by the operator: read-only")
    expect(dashboard.testid(f"limit-spend_per_day-{ci['id']}")).to_contain_text("$5.00 / day")
    expect(dashboard.testid(f"limits-{customer.key_id}")).to_have_text("None")
    dashboard.screenshot("keys-limits")

    # The operator's limits are shown read-only in the editor; a looser own limit is refused.
    dashboard.testid(f"edit-limits-{ci['id']}").click()
    form = dashboard.testid(f"limits-form-{ci['id']}")
    expect(dashboard.testid(f"operator-rpm-{ci['id']}")).to_contain_text("Operator: 100 rpm")
    form.locator('input[name="rpm"]').fill("1000")
    dashboard.testid(f"save-limits-{ci['id']}").click()
    expect(dashboard.testid(f"limits-error-{ci['id']}")).to_contain_text(
        "operator limits this key's rpm to 100")
    assert _keys(customer)[ci["id"]]["own_limits"]["rpm"] is None
    dashboard.screenshot("keys-limit-refused")

    # Stricter ones are saved, and what applies is shown as the account's own.
    form.locator('input[name="rpm"]').fill("10")
    form.locator('input[name="spend_per_month"]').fill("1.50")
    dashboard.testid(f"save-limits-{ci['id']}").click()
    expect(form).to_be_hidden()
    expect(dashboard.testid(f"limit-rpm-{ci['id']}")).to_have_text("10 rpm")
    expect(dashboard.testid(f"limit-spend_per_month-{ci['id']}")).to_have_text("$1.50 / month")
    saved = _keys(customer)[ci["id"]]
    assert saved["own_limits"]["rpm"] == 10 and saved["limits"]["rpm"] == 10
    assert saved["own_limits"]["spend_per_month"] == "1.50"
    assert saved["operator_limits"] == {**saved["operator_limits"], "rpm": 100,
                                        "spend_per_day": "5.00"}
    assert Decimal(saved["spend"]["today"]) == Decimal(cost)


def test_the_models_tab_says_what_a_cap_does(open_dashboard, customer: Customer):  # noqa: F811
    dashboard = open_dashboard()
    dashboard.sign_in(customer.key)
    dashboard.open_tab("models")
    explainer = dashboard.page.locator("#cap-explainer")
    expect(explainer).to_contain_text("lowers the request's max output tokens")
    expect(explainer).to_contain_text("refuses (402) only a request whose prompt alone")
    # Prices in one column share their decimal places: 0.15 reads 0.150 above 0.075.
    rows = dashboard.page.locator("#models-table tbody tr")
    expect(rows.first).to_be_visible()
    for column in ("Input / 1M tokens", "Typical call"):
        cells = dashboard.page.locator(f"#models-table tbody td[data-label='{column}']")
        expect(cells.nth(1)).to_be_visible()  # the priced rows, not a loading placeholder
        shown = cells.all_text_contents()
        assert len(shown) > 1 and len({len(text.partition(".")[2]) for text in shown}) == 1, \
            (column, shown)


def test_creating_a_key_asks_for_its_scope(open_dashboard, customer: Customer):  # noqa: F811
    dashboard = open_dashboard()
    page = dashboard.page
    dashboard.sign_in(customer.key)
    dashboard.open_tab("keys")
    page.locator("#new-key-name").fill("teammate")
    page.locator("#create-key").click()
    expect(page.locator("#create-key-error")).to_contain_text("Choose the key's scope")
    assert [k["name"] for k in _keys(customer).values()] == ["test"]
    page.locator("#new-key-scope").select_option("manage")
    page.locator("#create-key").click()
    expect(page.locator("#new-key-box")).to_be_visible()
    [made] = [k for k in _keys(customer).values() if k["name"] == "teammate"]
    assert made["scope"] == "manage"
    expect(dashboard.testid(f"scope-{made['id']}")).to_have_text("Manage")
    expect(page.locator("#new-key-scope")).to_have_value("")  # asked afresh next time


def test_an_inference_key_cannot_sign_in_and_is_told_why(open_dashboard,  # noqa: F811
                                                         customer: Customer):
    with customer.http() as http:
        ci = http.post("/v1/account/keys", json={"name": "ci"}).json()
    dashboard = open_dashboard()
    page = dashboard.page
    page.goto(dashboard.home)
    page.locator("#key-input").fill(ci["key"])
    page.locator("#signin-submit").click()
    expect(page.locator("#signin-message")).to_contain_text("inference key")
    expect(page.locator("#signin-message")).to_contain_text("manage key")
    expect(page.locator("#app-view")).to_be_hidden()
