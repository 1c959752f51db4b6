"""Faults, theirs and ours: whatever fails, the caller gets its dialect's error,
the hold is released, and nothing is billed unless the provider reported usage.
Retries happen only before any byte reached the caller, bounded, honouring
retry-after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

import httpx
import openai
import pytest
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.money import from_pico
from afk.settings import Settings, Upstream
from afk.store import Dynamo, Store
from afk.sweeper import sweep
from tests.conftest import Customer
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.fakes.upstream import wait_until
from tests.support.servers import serve

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Hello"}]
RETRY = {"x-should-retry": "true", "retry-after": "0.05"}


# ------------------------------------------------------------------ retries
def test_overload_is_retried_before_the_first_byte(customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(status=503, headers=RETRY), Reply(status=529, headers=RETRY),
                     Reply(text="Third time lucky.", prompt_tokens=10, completion_tokens=4))
    for stream in (False, True):
        if stream:
            fake_openai.push(Reply(status=429, headers=RETRY), Reply(text="Third time lucky."))
        result = customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                                           stream=stream)
        text = "".join(c.choices[0].delta.content or "" for c in result if c.choices) \
            if stream else result.choices[0].message.content
        assert text == "Third time lucky."
    assert len(fake_openai.requests) == 5
    assert [e.status for e in customer.charges()] == ["ok", "ok"]  # one entry per call
    customer.assert_books_balance()


def test_retries_are_bounded(customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(*[Reply(status=503, headers=RETRY) for _ in range(5)])
    with pytest.raises(openai.InternalServerError):
        customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(fake_openai.requests) == 3
    assert customer.balance() == 10 and customer.charges()[0].amount == 0


def test_a_long_retry_after_goes_back_to_the_caller(customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(status=429, headers={"x-should-retry": "true", "retry-after": "30"}))
    with pytest.raises(openai.RateLimitError) as caught:
        customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "30"
    assert len(fake_openai.requests) == 1


def test_client_errors_are_not_retried(customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(status=400, error_type="invalid_request_error",
                           headers={"x-should-retry": "true"}))
    with pytest.raises(openai.BadRequestError):
        customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(fake_openai.requests) == 1


# ------------------------------------------------------------------ broken upstreams
class Broken:
    """An upstream that answers 200 and then misbehaves, as the test says."""

    def __init__(self) -> None:
        self.mode = "json"
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.handle,
                                           methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):
            return Response(b"{not json", media_type="application/json")

        async def events():
            yield b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m",' \
                  b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
            if self.mode == "sse":
                yield b"data: {broken\n\n"
            elif self.mode == "mid-event":
                yield b'data: {"id":"x"'

        return StreamingResponse(events(), media_type="text/event-stream")


@contextmanager
def gateway_against(settings: Settings, store: Store, base_url: str,
                    **overrides) -> Iterator[str]:
    upstreams = {**settings.upstreams, "openai": Upstream(base_url, "k")}
    gateway = Gateway(replace(settings, upstreams=upstreams, **overrides), store=store)
    with serve(create_app("local", gateway)) as url:
        yield url


@pytest.mark.parametrize("mode, stream", [("json", False), ("sse", True), ("mid-event", True)])
def test_malformed_upstream_answers_are_errors(make_customer, settings, store, mode, stream):
    broken = Broken()
    broken.mode = mode
    customer = make_customer()
    with serve(broken.app) as upstream, gateway_against(settings, store,
                                                        f"{upstream}/v1") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        with pytest.raises(openai.APIError) as caught:
            result = client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                    stream=stream)
            list(result)
    [entry] = customer.charges()
    assert entry.status == "error"
    if not stream:
        assert caught.value.status_code == 502
        assert entry.amount == 0  # nothing reached us, nothing reported: nothing billed
    else:  # "Hi" was generated before the stream broke: the provider bills it
        assert entry.estimated and entry.output_tokens >= 1 and entry.amount > 0
    customer.assert_books_balance()


def test_a_stalled_stream_times_out_and_bills_what_was_generated(
        make_customer, settings, store, fake_openai_server):
    fake, upstream = fake_openai_server
    fake.reset()
    fake.push(Reply(text="one two three four five six", stall_after=3))
    customer = make_customer()
    with gateway_against(settings, store, f"{upstream}/v1", read_timeout=0.5) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                        stream=True):
                received.append(chunk)
    assert received, "the part before the stall reached the caller"
    assert "Timed out" in caught.value.message
    [entry] = customer.charges()
    assert entry.status == "timeout" and entry.estimated  # like a disconnect (issue 19)
    assert entry.output_tokens >= 2 and entry.amount > 0
    wait_until(lambda: fake.cancelled == 1, timeout=5)  # the upstream request was dropped


@contextmanager
def unaccepting_listener() -> Iterator[int]:
    """A loopback port whose accept queue is full: connects to it hang until they
    time out (the kernel drops the SYNs), which is what a dead host looks like."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


def test_connect_timeout_is_504(make_customer, settings, store):
    customer = make_customer()
    with unaccepting_listener() as port, gateway_against(
            settings, store, f"http://127.0.0.1:{port}/v1", connect_timeout=0.2) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 504
    assert "connecting" in caught.value.message
    assert customer.balance() == 10


# ------------------------------------------------------------------ our own faults
class FaultyClient:
    """The real DynamoDB client, except the operations told to fail."""

    def __init__(self, client, failing: dict[str, str]) -> None:
        self._client, self.failing, self.calls = client, failing, []

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name in self.failing:
            def fail(**kwargs):
                self.calls.append(name)
                code = self.failing[name]
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, name)
            return fail
        return attribute


@contextmanager
def faulty_gateway(settings: Settings, store: Store, failing: dict[str, str]):
    client = FaultyClient(store.dynamo.client, failing)
    faulty = Store(Dynamo(store.dynamo.table, client=client, retry_budget=0.3))
    with serve(create_app("local", Gateway(settings, store=faulty))) as url:
        yield url, client


def test_reserve_failure_fails_closed(customer: Customer, settings, store,
                                      fake_openai: FakeOpenAI):
    with faulty_gateway(settings, store,
                        {"transact_write_items": "ThrottlingException"}) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 503
    assert "Nothing was charged" in caught.value.message
    assert fake_openai.requests == []  # no upstream call without a hold
    assert customer.balance() == 10 and customer.charges() == []


def test_a_charge_the_store_refuses_is_kept_and_written_with_the_next_settle(
        customer: Customer, settings, store, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(text="Delivered anyway."), Reply(text="Streamed anyway."),
                     Reply(text="Store is back."))
    with faulty_gateway(settings, store, {}) as (url, client):
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=customer.key, max_retries=0)
        client.failing["put_item"] = "InternalServerError"  # every charge write, for now
        answer = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
        streamed = "".join(c.choices[0].delta.content or "" for c in
                           sdk.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                       stream=True) if c.choices)
        assert answer.choices[0].message.content == "Delivered anyway."
        assert streamed == "Streamed anyway."
        assert client.calls.count("put_item") >= 2  # retried within the budget, then kept
        assert customer.charges() == []
        customer.assert_books_balance()

        del client.failing["put_item"]
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    charges = customer.charges()
    assert len(charges) == 3 and {e.status for e in charges} == {"ok"}
    assert all(e.amount > 0 for e in charges)  # nothing that completed went unbilled
    assert customer.balance() == 10 - sum(from_pico(e.amount) for e in charges)
    customer.assert_books_balance()


SERVER = """
import sys, uvicorn
from dataclasses import replace
from afk.money import from_pico
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.settings import Settings, Upstream
from afk.store import Dynamo, Store
endpoint, upstream, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = replace(Settings.from_env({}), table="afk-test", dynamodb_endpoint=endpoint,
                   upstreams={"openai": Upstream(upstream + "/v1", "k")})
gateway = Gateway(settings, store=Store(Dynamo("afk-test", endpoint_url=endpoint)))
uvicorn.run(create_app("local", gateway), host="127.0.0.1", port=port, log_level="warning")
"""


def test_a_process_killed_mid_stream_leaves_a_lease_the_sweeper_folds_in(
        customer: Customer, dynamodb_endpoint: str, fake_openai_server, store):
    import socket

    fake, upstream = fake_openai_server
    fake.reset()
    fake.push(Reply(text=" ".join(["word"] * 400), chunk_delay=0.02))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVER, dynamodb_endpoint, upstream,
                                str(port)], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), timeout=20)
        with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {customer.key}"},
                          json={"model": MODEL, "messages": MESSAGES, "stream": True}) as resp:
            lines = resp.iter_lines()
            for _ in range(10):
                next(lines)
            process.send_signal(signal.SIGKILL)  # no finally, no settle
            process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    [lease] = customer.statement().leases  # the dead process's, with its call in it
    assert customer.charges() == []
    customer.assert_books_balance()

    assert sweep(store.leases, account_id=customer.account_id)["closed"] == 0  # not yet due
    later = lease.reconcile_ms + 1
    swept = [sweep(store.leases, now_ms=later, account_id=customer.account_id)
             for _ in range(2)]
    assert [s["closed"] for s in swept] == [1, 0]  # folded in once
    statement = customer.statement()
    assert statement.leases == [] and statement.held == 0
    assert customer.charges() == []  # a call cut by a crash is never billed (docs/money.md)
    assert customer.balance() == Decimal(10)
    customer.assert_books_balance()


def _up(url: str) -> bool:
    try:
        httpx.get(f"{url}/v1/models", timeout=0.5)
        return True
    except httpx.TransportError:
        time.sleep(0.1)
        return False
