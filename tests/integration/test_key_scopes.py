"""Key scopes and limits by owner (issue 15), through real HTTP and the SDKs.

An inference key calls models and reads its own usage; a manage key also
manages the account. Limits the operator set (`afk admin keys limit`) no
customer key can lift; the account's own limits can only be stricter.
"""

from __future__ import annotations

import re

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from afk.http.apps import create_app
from afk.limits import Limits
from tests.conftest import Customer
from tests.support.windows import one_rate_window

# Management routes, with a body each would accept from a manage key. The
# inference-readable ones are listed apart; a route in neither list fails the
# coverage test, so a new account route must say which scope it needs.
INFERENCE_READABLE = {("GET", "/v1/account/usage"), ("GET", "/v1/account/usage/summary"),
                      ("GET", "/v1/account/usage/export"),  # its own calls only
                      ("GET", "/v1/account/topup")}  # what may be bought: no account data
NOT_KEYED = {("POST", "/webhooks/stripe"),  # Stripe's signature, not an API key
             ("GET", "/v1/account/openapi.json")}  # the API's description: no account data
MANAGEMENT_CALLS = {
    ("GET", "/v1/account"): None,
    ("PUT", "/v1/account/caps/{model_id:path}"): {"usd": "0.05"},
    ("DELETE", "/v1/account/caps/{model_id:path}"): None,
    ("GET", "/v1/account/keys"): None,
    ("POST", "/v1/account/keys"): {"name": "minted"},
    ("PATCH", "/v1/account/keys/{key_id}"): {"rpm": None},
    ("DELETE", "/v1/account/keys/{key_id}"): None,
    ("POST", "/v1/account/checkout"): {"usd": "25.00", "return_url": "http://127.0.0.1/"},
}


def _account_routes(gateway) -> set[tuple[str, str]]:
    """Every route the account function serves (whichever modules hold them)."""
    return {(method, route.path) for route in create_app("account", gateway).routes
            for method in getattr(route, "methods", None) or () if method != "HEAD"}


def _url(path: str, key_id: str) -> str:
    return path.replace("{model_id:path}", "echo").replace("{key_id}", key_id)


def _inference_key(customer: Customer, **limits: object) -> dict:
    with customer.http() as http:
        created = http.post("/v1/account/keys",
                            json={"name": "ci", "scope": "inference", **limits})
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == "inference"
    return created.json()


def test_every_account_route_declares_its_scope(gateway):
    assert _account_routes(gateway) == set(MANAGEMENT_CALLS) | INFERENCE_READABLE | NOT_KEYED


@pytest.mark.parametrize(("method", "path"), sorted(MANAGEMENT_CALLS))
def test_an_inference_key_is_refused_on_every_management_route(customer: Customer,
                                                                 method: str, path: str):
    ci = _inference_key(customer)
    before = customer.store.keys.list(customer.account_id)
    response = httpx.request(method, f"{customer.url}{_url(path, ci['id'])}",
                             json=MANAGEMENT_CALLS[(method, path)],
                             headers={"authorization": f"Bearer {ci['key']}"})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert "inference key" in error["message"] and "manage key" in error["message"]
    # Nothing changed: no key minted, revoked or lifted, no cap set.
    assert customer.store.keys.list(customer.account_id) == before
    assert customer.account().caps == {}
    # The same call with the manage key passes the scope check (a checkout may still
    # fail for its own reasons: no payment provider configured here).
    with customer.http() as http:
        allowed = http.request(method, _url(path, ci["id"]),
                               json=MANAGEMENT_CALLS[(method, path)])
    assert allowed.status_code != 403, allowed.text


def test_an_inference_key_calls_models_and_reads_only_its_own_usage(customer: Customer):
    ci = _inference_key(customer)
    client = openai.OpenAI(base_url=f"{customer.url}/v1", api_key=ci["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "from ci"}])
    assert "echo" in [m.id for m in client.models.list()]
    owners = customer.openai().chat.completions.with_raw_response.create(  # the owner's call
        model="echo", messages=[{"role": "user", "content": "from the owner"}])
    as_ci = {"authorization": f"Bearer {ci['key']}"}
    mine = httpx.get(f"{customer.url}/v1/account/usage", headers=as_ci).json()["data"]
    assert [e["request_id"] for e in mine] == [raw.headers["x-afk-request-id"]]
    exported = httpx.get(f"{customer.url}/v1/account/usage/export", headers=as_ci).text
    assert raw.headers["x-afk-request-id"] in exported
    assert owners.headers["x-afk-request-id"] not in exported
    with customer.http() as http:
        everything = http.get("/v1/account/usage").json()["data"]
    assert len([e for e in everything if e["type"] == "charge"]) == 2


def test_keys_made_before_scopes_keep_managing(customer: Customer):
    """A key stored without a scope (every key before issue 15) is a manage key."""
    item = customer.store.dynamo.client.get_item(
        TableName=customer.store.dynamo.table,
        Key={"PK": {"S": f"ACCOUNT#{customer.account_id}"},
             "SK": {"S": f"KEY#{customer.key_id}"}})["Item"]
    digest = item["key_hash"]["S"]
    for key in ({"PK": {"S": f"KEY#{digest}"}, "SK": {"S": "KEY"}},
                {"PK": item["PK"], "SK": item["SK"]}):
        customer.store.dynamo.client.update_item(
            TableName=customer.store.dynamo.table, Key=key,
            UpdateExpression="REMOVE #s, limits, operator_limits",
            ExpressionAttributeNames={"#s": "scope"})
    customer.gateway.auth.forget()
    with customer.http() as http:
        keys = http.get("/v1/account/keys")
        assert keys.status_code == 200
        assert {k["id"]: k["scope"] for k in keys.json()["data"]}[customer.key_id] == "manage"


def test_an_inference_key_cannot_lift_an_operator_limit(customer: Customer):
    """The issue's repro: a key with rpm 1 tried to PATCH its own limit away and to
    mint a key without it."""
    ci = _inference_key(customer)
    customer.store.keys.set_limits(ci["id"], Limits(rpm=1), owner="operator")
    customer.gateway.auth.forget()
    ci_http = httpx.Client(base_url=customer.url,
                           headers={"authorization": f"Bearer {ci['key']}"})
    with ci_http:
        lift = ci_http.patch(f"/v1/account/keys/{ci['id']}", json={"rpm": None})
        mint = ci_http.post("/v1/account/keys", json={"name": "escape"})
    assert (lift.status_code, mint.status_code) == (403, 403)
    record, _ = customer.store.keys.get(ci["id"])
    assert record.operator.rpm == 1 and record.rpm == 1
    assert [k.name for k in customer.store.keys.list(customer.account_id)] == ["test", "ci"]


def test_a_manage_key_sets_stricter_limits_only(customer: Customer):
    ci = _inference_key(customer)
    customer.store.keys.set_limits(ci["id"], Limits(rpm=100, per_day=5 * 10**12),
                                   owner="operator")
    with customer.http() as http:
        looser = http.patch(f"/v1/account/keys/{ci['id']}", json={"rpm": 1000})
        assert looser.status_code == 403
        assert looser.json()["error"]["code"] == "operator_limit"
        assert "rpm" in looser.json()["error"]["message"] and "100" in \
            looser.json()["error"]["message"]
        stricter = http.patch(f"/v1/account/keys/{ci['id']}",
                              json={"rpm": 10, "spend_per_day": "1.50"}).json()
        assert stricter["limits"]["rpm"] == 10 and stricter["limits"]["spend_per_day"] == "1.50"
        assert stricter["operator_limits"]["rpm"] == 100
        lifted = http.patch(f"/v1/account/keys/{ci['id']}", json={"rpm": None}).json()
    # Lifting its own limit leaves the operator's in force.
    assert lifted["own_limits"]["rpm"] is None and lifted["limits"]["rpm"] == 100
    assert lifted["limits"]["spend_per_day"] == "1.50"


def test_a_key_minted_by_a_limited_key_inherits_the_operator_limits(customer: Customer):
    customer.store.keys.set_limits(customer.key_id, Limits(rpm=7, models=frozenset({"echo"})),
                                   owner="operator")
    customer.gateway.auth.forget()
    with customer.http() as http:
        minted = http.post("/v1/account/keys", json={"name": "child"}).json()
    assert minted["operator_limits"]["rpm"] == 7
    assert minted["limits"]["models"] == ["echo"]


def test_allowed_models_refuse_others_in_each_dialect(customer: Customer):
    ci = _inference_key(customer, models=["echo"])
    client = openai.OpenAI(base_url=f"{customer.url}/v1", api_key=ci["key"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["echo"]
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "ok"}])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="echo-large",
                                       messages=[{"role": "user", "content": "no"}])
    assert "echo-large" in caught.value.message and "echo" in caught.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic.Anthropic(base_url=customer.url, api_key=ci["key"], max_retries=0) \
            .messages.create(model="echo-large", max_tokens=10,
                             messages=[{"role": "user", "content": "no"}])
    gemini = genai.Client(api_key=ci["key"], http_options=types.HttpOptions(
        base_url=customer.url, retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(genai_errors.ClientError) as refused:
        gemini.models.generate_content(model="echo-large", contents="no")
    assert refused.value.code == 403
    assert len(customer.charges()) == 1


def test_an_expired_key_is_refused(customer: Customer):
    ci = _inference_key(customer, expires_at="2020-01-01T00:00:00Z")
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(base_url=f"{customer.url}/v1", api_key=ci["key"], max_retries=0) \
            .models.list()
    assert "expired" in caught.value.message and "2020-01-01" in caught.value.message


def test_the_operator_rpm_is_a_429_naming_the_limit(customer: Customer, monkeypatch):
    ci = _inference_key(customer)
    customer.store.keys.set_limits(ci["id"], Limits(rpm=1), owner="operator")
    one_rate_window(monkeypatch)  # both calls in one minute
    client = openai.OpenAI(base_url=f"{customer.url}/v1", api_key=ci["key"], max_retries=0)
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "1"}])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "2"}])
    assert re.search(r"limited to 1 requests? per minute", caught.value.message)


@pytest.mark.parametrize(("body", "param"), [
    ({"scope": "admin"}, "scope"), ({"spend_per_day": 5.0}, "spend_per_day"),
    ({"spend_per_month": "-1"}, "spend_per_month"), ({"models": "echo"}, "models"),
    ({"models": [1]}, "models"), ({"models": ["gpt-99"]}, "models"),
    ({"expires_at": "tomorrow"}, "expires_at"),
])
def test_bad_scopes_and_limits_are_400_naming_the_field(customer: Customer, body: dict,
                                                        param: str):
    with customer.http() as http:
        response = http.post("/v1/account/keys", json={"name": "x", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
