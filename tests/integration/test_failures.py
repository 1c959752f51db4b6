"""What a caller sees when something goes wrong, and what it costs them:
bad keys, bad input, upstream failures, and hanging up mid-stream."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.fakes.upstream import wait_until

MODEL = "gpt-4o-mini"
PRICES = Catalog.load().get(MODEL).prices
MESSAGES = [{"role": "user", "content": "Hello"}]


def test_every_key_style_is_accepted(customer: Customer):
    body = {"model": "echo", "messages": MESSAGES}
    url = f"{customer.url}/v1/chat/completions"
    for headers, params in [({"authorization": f"Bearer {customer.key}"}, {}),
                            ({"x-api-key": customer.key}, {}),
                            ({"x-goog-api-key": customer.key}, {}),
                            ({}, {"key": customer.key})]:
        response = httpx.post(url, json=body, headers=headers, params=params)
        assert response.status_code == 200, (headers, params, response.text)
        assert response.headers["x-afk-request-id"].startswith("req_")


def test_bad_missing_and_revoked_keys_are_401(customer: Customer, fake_openai: FakeOpenAI):
    bad = openai.OpenAI(base_url=f"{customer.url}/v1", api_key="afk-" + "x" * 48,
                        max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    assert httpx.get(f"{customer.url}/v1/models").status_code == 401

    with customer.http() as http:
        created = http.post("/v1/account/keys", json={"name": "temp"}).json()
        second = openai.OpenAI(base_url=f"{customer.url}/v1", api_key=created["key"],
                               max_retries=0)
        assert second.chat.completions.create(model="echo", messages=MESSAGES).choices
        assert http.delete(f"/v1/account/keys/{created['id']}").json()["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        second.chat.completions.create(model="echo", messages=MESSAGES)
    assert fake_openai.requests == []


def test_unknown_model_is_404_in_openai_shape(customer: Customer):
    with pytest.raises(openai.NotFoundError) as caught:
        customer.openai().chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert "gpt-nonexistent" in caught.value.message


@pytest.mark.parametrize("upstream_status, caller_status, exception", [
    (500, 502, openai.APIStatusError),
    (503, 503, openai.InternalServerError),
    (429, 429, openai.RateLimitError),
    (400, 400, openai.BadRequestError),
])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_release_the_hold_and_bill_nothing(
        customer: Customer, fake_openai: FakeOpenAI, upstream_status, caller_status,
        exception, stream):
    fake_openai.push(Reply(status=upstream_status, error_message="upstream says no"))
    with pytest.raises(exception) as caught:
        result = customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                                           stream=stream)
        list(result)
    assert caught.value.status_code == caller_status
    assert customer.balance() == Decimal(10)
    assert customer.in_flight() == 0
    [entry] = customer.charges()
    assert (entry.amount, entry.status) == (0, "error")
    customer.assert_books_balance()


def test_upstream_unreachable_is_502(make_customer, settings, store):
    """Connection refused: nothing listens on the upstream port."""
    import socket
    from dataclasses import replace

    from afk.gateway import Gateway
    from afk.http.apps import create_app
    from afk.settings import Upstream
    from tests.support.servers import serve

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    broken = replace(settings, upstreams={**settings.upstreams,
                                          "openai": Upstream(f"http://127.0.0.1:{dead}/v1", "k")})
    customer = make_customer()
    with serve(create_app("local", Gateway(broken, store=store))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 502
    assert customer.balance() == Decimal(10)
    customer.assert_books_balance()


def test_mid_stream_error_after_output_bills_what_was_generated(customer: Customer,
                                                                fake_openai: FakeOpenAI):
    """The provider bills the output it generated before its error (issue 19)."""
    fake_openai.push(Reply(text="partial answer", mid_stream_error="upstream exploded"))
    with pytest.raises(openai.APIError):
        list(customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                                       stream=True))
    [entry] = customer.charges()
    assert entry.status == "error" and entry.estimated
    assert entry.output_tokens >= 2 and entry.amount > 0
    customer.assert_books_balance()


def test_truncated_upstream_stream_is_an_error_not_a_short_answer(customer: Customer,
                                                                   fake_openai: FakeOpenAI):
    fake_openai.push(Reply(text="one two three four five", eof_after=3))
    with pytest.raises(openai.APIError) as caught:
        list(customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                                       stream=True))
    assert "ended before" in caught.value.message
    assert customer.charges()[0].status == "error"
    customer.assert_books_balance()


def test_client_disconnect_mid_stream_settles_for_what_was_generated(
        customer: Customer, fake_openai: FakeOpenAI):
    words = " ".join(f"w{i}" for i in range(200))
    fake_openai.push(Reply(text=words, chunk_delay=0.02, prompt_tokens=30))
    stream = customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                                       stream=True)
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
        if seen == 5:
            break
    stream.close()

    # The upstream request is cancelled promptly and the hold is settled.
    wait_until(lambda: fake_openai.cancelled == 1, timeout=5)
    wait_until(lambda: customer.in_flight() == 0, timeout=5)
    [entry] = customer.charges()
    assert entry.status == "disconnected"
    assert entry.estimated  # the upstream never got to report usage
    assert seen <= entry.output_tokens < 200
    assert entry.amount == (entry.input_tokens * PRICES.input
                            + entry.output_tokens * PRICES.output) * 10**6
    time.sleep(0.2)
    assert fake_openai.streams_finished == 0
    customer.assert_books_balance()


def test_upstream_read_timeout_is_504_and_bills_nothing(make_customer, settings, store,
                                                        fake_openai: FakeOpenAI):
    from dataclasses import replace

    from afk.gateway import Gateway
    from afk.http.apps import create_app
    from tests.support.servers import serve

    fake_openai.push(Reply(delay=3.0))
    impatient = replace(settings, read_timeout=0.3)
    customer = make_customer()
    with serve(create_app("local", Gateway(impatient, store=store))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 504
    assert customer.balance() == Decimal(10)
    customer.assert_books_balance()
