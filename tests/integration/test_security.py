"""No one gets in, nothing leaks: keys only as hashes, no key or prompt in any
log line, revocation within the cache time, no reach into another account,
balances the account API cannot touch, no CORS, per-key rate limits that hold
across processes."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import anthropic
import httpx
import openai
import pytest

from afk.gateway import Gateway
from afk.http.apps import create_app
from tests.conftest import Customer
from tests.support.servers import serve
from tests.support.windows import one_rate_window

PROMPT = "my-secret-prompt-text-4242"


def test_keys_are_stored_only_as_hashes(customer: Customer, store):
    import hashlib

    items = store.dynamo.client.scan(TableName=store.dynamo.table)["Items"]
    dump = repr(items)
    assert customer.key not in dump
    assert hashlib.sha256(customer.key.encode()).hexdigest() in dump


def test_no_key_and_no_prompt_in_any_log_line(customer: Customer, caplog, fake_openai):
    caplog.set_level(logging.DEBUG)
    client = customer.openai()
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": PROMPT}])
    httpx.post(f"{customer.url}/v1/chat/completions", params={"key": customer.key},
               json={"model": "echo", "messages": [{"role": "user", "content": PROMPT}]})
    httpx.post(f"{customer.url}/v1/messages", headers={"x-api-key": customer.key},
               json={"model": "no-such-model", "max_tokens": 5,
                     "messages": [{"role": "user", "content": PROMPT}]})
    fake_openai.push(__import__("tests.fakes.fake_openai", fromlist=["Reply"]).Reply(
        status=500, error_message="upstream broke"))
    with pytest.raises(openai.APIError):
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": PROMPT}])
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert logged, "expected the gateway to log something"
    for secret in (customer.key, customer.key[4:20], PROMPT, "sk-upstream-secret"):
        assert secret not in logged


def test_a_revoked_key_stops_working_within_the_cache_time(customer: Customer, settings, store):
    """Another warm process that cached the key sees the revocation within its
    cache TTL (AFK_CACHE_TTL, 10 s by default; here 0.5 s)."""
    with customer.http() as http:
        created = http.post("/v1/account/keys", json={"name": "doomed"}).json()
    other = Gateway(replace(settings, cache_ttl=0.5), store=store)
    with serve(create_app("local", other)) as other_url:
        doomed = openai.OpenAI(base_url=f"{other_url}/v1", api_key=created["key"],
                               max_retries=0)
        doomed.models.list()  # cached as valid by the other process
        with customer.http() as http:
            http.delete(f"/v1/account/keys/{created['id']}").raise_for_status()
        time.sleep(0.6)
        with pytest.raises(openai.AuthenticationError):
            doomed.models.list()


def test_one_account_cannot_reach_another(make_customer):
    alice, bob = make_customer(), make_customer()
    with bob.http() as http:
        bobs_key = http.post("/v1/account/keys", json={"name": "bob-2"}).json()
        http.put("/v1/account/caps/echo", json={"usd": "0.50"}).raise_for_status()
    bob.openai().chat.completions.create(model="echo",
                                         messages=[{"role": "user", "content": "bob"}])
    with alice.http() as http:
        assert http.delete(f"/v1/account/keys/{bobs_key['id']}").status_code == 404
        assert http.patch(f"/v1/account/keys/{bobs_key['id']}",
                          json={"rpm": 1}).status_code == 404
        assert all(k["id"] != bobs_key["id"] for k in http.get("/v1/account/keys").json()["data"])
        assert http.get("/v1/account/usage").json()["data"][0]["type"] == "credit"
        assert http.get("/v1/account").json()["caps"] == {}
    # Bob's key still works, his cap is untouched.
    second = openai.OpenAI(base_url=f"{bob.url}/v1", api_key=bobs_key["key"], max_retries=0)
    assert second.models.retrieve("echo").pricing["per_call_cap"] == "0.50"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_the_account_api_cannot_change_balances(customer: Customer, method: str):
    with customer.http() as http:
        response = http.request(method, "/v1/account", json={"balance": "1000000"})
        assert response.status_code == 405
        assert http.request(method, "/v1/account/credits", json={"usd": "100"}).status_code \
            in (404, 405)
    assert customer.balance() == 10


def test_no_cross_origin_access(customer: Customer):
    preflight = httpx.options(f"{customer.url}/v1/chat/completions", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST",
        "access-control-request-headers": "authorization"})
    assert "access-control-allow-origin" not in preflight.headers
    response = httpx.get(f"{customer.url}/v1/models", headers={
        "origin": "https://evil.example", "authorization": f"Bearer {customer.key}"})
    assert "access-control-allow-origin" not in response.headers


def test_per_key_rate_limit_is_a_429_in_each_dialect_across_processes(customer: Customer,
                                                                      settings, store,
                                                                      monkeypatch):
    with customer.http() as http:
        limited = http.post("/v1/account/keys", json={"name": "limited", "rpm": 3}).json()
        assert limited["rpm"] == 3
    other = Gateway(settings, store=store)  # a second "container" sharing the count
    with serve(create_app("local", other)) as other_url:
        urls = [customer.url, other_url, customer.url]
        left = one_rate_window(monkeypatch)  # the six counted calls share one minute
        for url in urls:
            openai.OpenAI(base_url=f"{url}/v1", api_key=limited["key"], max_retries=0) \
                .chat.completions.create(model="echo",
                                         messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as caught:
            openai.OpenAI(base_url=f"{other_url}/v1", api_key=limited["key"], max_retries=0) \
                .chat.completions.create(model="echo",
                                         messages=[{"role": "user", "content": "hi"}])
        assert int(caught.value.response.headers["retry-after"]) == left
        with pytest.raises(anthropic.RateLimitError) as caught_anthropic:
            anthropic.Anthropic(base_url=customer.url, api_key=limited["key"],
                                max_retries=0).messages.create(
                model="echo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert caught_anthropic.value.body["error"]["type"] == "rate_limit_error"
    # The account's other keys are not limited, and nothing was billed for refusals.
    customer.openai().chat.completions.create(model="echo",
                                              messages=[{"role": "user", "content": "hi"}])
    assert len(customer.charges()) == 4
    with customer.http() as http:
        lifted = http.patch(f"/v1/account/keys/{limited['id']}", json={"rpm": None}).json()
    assert lifted["rpm"] is None


@pytest.mark.parametrize("rpm", [0, -1, "10", 1.5, 10**7])
def test_invalid_rate_limits_are_refused(customer: Customer, rpm):
    with customer.http() as http:
        response = http.post("/v1/account/keys", json={"name": "x", "rpm": rpm})
    assert response.status_code == 400 and response.json()["error"]["param"] == "rpm"
