"""No free lunch (issue 19, part 4): what the gateway does without billing is
bounded. Token counting needs credit and has rate and size limits of its own;
stored Responses state has a per-turn size and a per-account quota; fetching
image URLs has a per-request budget of images, bytes and wall-clock time;
junk keys cost one store read, not one per request; the offline echo models
are not part of a deployed catalog.

Each refusal comes in the caller's dialect before anything reaches the
upstream (the fake recorded nothing) and moves no money."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from afk.auth import Authenticator
from afk.errors import AuthenticationFailed
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.providers.images import ImageFetcher
from afk.settings import Settings
from tests.conftest import Customer
from tests.support.servers import serve
from tests.support.windows import one_rate_window

MESSAGES = [{"role": "user", "content": "count these words"}]


def _png(width: int = 8, height: int = 8) -> bytes:
    """A valid grey PNG (its size readable, so the gateway can price it)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png()


@contextmanager
def gateway_with(settings: Settings, store, customer: Customer,
                 **changes: object) -> Iterator[Customer]:
    """The customer, talking to a gateway of its own with `changes` to the settings."""
    gateway = Gateway(replace(settings, **changes), store=store)
    with serve(create_app("local", gateway)) as url:
        yield replace(customer, url=url, gateway=gateway)


def anthropic_client(customer: Customer, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=customer.url, api_key=key or customer.key,
                               max_retries=0)


def gemini_client(customer: Customer, key: str | None = None) -> genai.Client:
    return genai.Client(api_key=key or customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, api_version="v1beta",
        retry_options=gtypes.HttpRetryOptions(attempts=1)))


def assert_untouched(customer: Customer, credits: str = "10") -> None:
    assert customer.balance() == Decimal(credits)
    assert customer.charges() == []


# ------------------------------------------------------------------ token counting
def test_counting_tokens_needs_credit_in_the_anthropic_dialect(make_customer, fake_anthropic):
    broke = make_customer("0")
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_client(broke).messages.count_tokens(model="claude-haiku-4-5",
                                                      messages=MESSAGES)
    assert caught.value.status_code == 402
    assert caught.value.body["error"]["type"] == "billing_error"
    assert "credit" in caught.value.message
    assert fake_anthropic.requests == []
    assert_untouched(broke, "0")


def test_counting_tokens_needs_credit_in_the_gemini_dialect(make_customer, fake_gemini):
    broke = make_customer("0")
    client = gemini_client(broke)  # kept: a dropped genai client closes its connection
    with pytest.raises(gerrors.ClientError) as caught:
        client.models.count_tokens(model="gemini-2.5-flash", contents="count these words")
    assert caught.value.code == 402
    assert fake_gemini.requests == []
    assert_untouched(broke, "0")


def test_counting_tokens_has_its_own_rate_limit_in_both_dialects(
        customer: Customer, settings, store, fake_anthropic, fake_gemini, monkeypatch):
    left = one_rate_window(monkeypatch)
    with gateway_with(settings, store, customer, count_tokens_rpm=2) as limited:
        gemini = gemini_client(limited)
        anthropic_client(limited).messages.count_tokens(model="claude-haiku-4-5",
                                                        messages=MESSAGES)
        gemini.models.count_tokens(model="gemini-2.5-flash", contents="count these words")
        with pytest.raises(anthropic.RateLimitError) as caught:
            anthropic_client(limited).messages.count_tokens(model="claude-haiku-4-5",
                                                            messages=MESSAGES)
        assert caught.value.body["error"]["type"] == "rate_limit_error"
        assert "count tokens 2 times a minute" in caught.value.message
        assert int(caught.value.response.headers["retry-after"]) == left
        with pytest.raises(gerrors.ClientError) as caught_gemini:
            gemini.models.count_tokens(model="gemini-2.5-flash", contents="count these words")
        assert caught_gemini.value.code == 429
        # Generation is not what is limited: the key still generates.
        limited.openai().chat.completions.create(model="echo", messages=MESSAGES)
    assert len(fake_anthropic.requests) == 1 and len(fake_gemini.requests) == 1


def test_counting_tokens_counts_against_the_keys_rpm(customer: Customer, fake_anthropic,
                                                     monkeypatch):
    one_rate_window(monkeypatch)
    with customer.http() as http:
        limited = http.post("/v1/account/keys", json={"name": "slow", "rpm": 2}).json()
    client = anthropic_client(customer, limited["key"])
    client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
    client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
    assert "2 requests per minute" in caught.value.message
    with pytest.raises(anthropic.RateLimitError):  # and so does generating, now
        client.messages.create(model="echo", max_tokens=5, messages=MESSAGES)
    assert len(fake_anthropic.requests) == 2
    assert_untouched(customer)


def test_counting_tokens_has_its_own_body_size_limit(customer: Customer, settings, store,
                                                    fake_anthropic, fake_gemini):
    words = "word " * 4000  # ~20 KB
    with gateway_with(settings, store, customer, count_tokens_max_bytes=10_000) as small:
        with pytest.raises(anthropic.APIStatusError) as caught:
            anthropic_client(small).messages.count_tokens(
                model="claude-haiku-4-5", messages=[{"role": "user", "content": words}])
        assert caught.value.status_code == 413
        assert "10000 bytes" in caught.value.message
        gemini = gemini_client(small)
        with pytest.raises(gerrors.ClientError) as caught_gemini:
            gemini.models.count_tokens(model="gemini-2.5-flash", contents=words)
        assert caught_gemini.value.code == 413
        assert fake_anthropic.requests == [] and fake_gemini.requests == []
        # The same body may still be generated from (and billed).
        answer = anthropic_client(small).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user",
                                                               "content": words}])
        assert answer.content
    assert customer.balance() < 10 and len(customer.charges()) == 1


# ------------------------------------------------------------------ stored Responses state
def test_a_stored_turn_over_the_size_limit_is_a_400_before_any_hold(
        customer: Customer, settings, store, fake_openai):
    big = "x" * 20_000
    with gateway_with(settings, store, customer, responses_max_turn_bytes=10_000) as small:
        client = small.openai()
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="gpt-4o-mini", input=big)
        assert caught.value.body["param"] == "store"
        assert caught.value.body["code"] == "stored_turn_too_large"
        assert "10000 bytes" in caught.value.message and '"store": false' in caught.value.message
        assert fake_openai.requests == []
        assert_untouched(customer)
        # Not storing it is the caller's way through: answered and billed.
        answer = client.responses.create(model="gpt-4o-mini", input=big, store=False)
        assert answer.output_text
    assert len(fake_openai.requests) == 1 and len(customer.charges()) == 1


def test_stored_state_has_a_per_account_quota_named_in_the_refusal(
        customer: Customer, settings, store, fake_openai):
    import secrets

    turn = secrets.token_hex(750)  # 1.5 KB that compresses little
    with gateway_with(settings, store, customer, responses_quota_bytes=4_000) as quota:
        client = quota.openai()
        first = client.responses.create(model="gpt-4o-mini", input=turn)
        used = store.responses.usage(customer.account_id, ttl_s=86_400)
        assert used == len(store.responses.get(customer.account_id, first.id).payload()) > 1000
        with pytest.raises(openai.BadRequestError) as caught:
            for _ in range(3):
                client.responses.create(model="gpt-4o-mini", input=turn)
        assert caught.value.body["code"] == "storage_quota_exceeded"
        assert "quota" in caught.value.message and "4000 bytes" in caught.value.message
        calls, charges = len(fake_openai.requests), len(customer.charges())
        before = store.responses.usage(customer.account_id, ttl_s=86_400)
        assert used < before <= 4_000
        # Deleting a stored turn makes room again, at once in this process.
        client.responses.delete(first.id)
        assert store.responses.usage(customer.account_id, ttl_s=86_400) == before - used
        client.responses.create(model="gpt-4o-mini", input=turn)
    assert len(fake_openai.requests) == calls + 1 and len(customer.charges()) == charges + 1


def test_storage_usage_is_summed_over_writers_and_days_and_errs_high(store, make_customer):
    from afk.store import StoredResponse
    from afk.store.responses import Responses

    account = make_customer().account_id
    now = int(time.time())
    writers = [Responses(store.dynamo), Responses(store.dynamo)]  # two processes

    def turn(response_id: str, created: int) -> StoredResponse:
        return StoredResponse(id=response_id, account_id=account, model="m",
                              created_at=created, expires_at=created + 3 * 86_400,
                              previous_response_id=None, ancestors=[],
                              input_items=[{"text": response_id * 50}], output_items=[])

    sizes = [writers[0].put(turn("a", now)), writers[1].put(turn("b", now)),
             writers[0].put(turn("c", now - 2 * 86_400)),
             writers[0].put(turn("old", now - 10 * 86_400))]  # past the TTL: not counted
    assert writers[1].usage(account, ttl_s=3 * 86_400, now=now) == sum(sizes[:3])
    assert writers[1].delete(account, "a") and not writers[0].delete(account, "a")
    assert writers[0].usage(account, ttl_s=3 * 86_400, now=now) == sizes[1] + sizes[2]


# ------------------------------------------------------------------ image URLs (Gemini)
class ImageHost:
    """Images over plain HTTP on loopback: how many were asked for, and slow ones."""

    def __init__(self) -> None:
        self.hits = 0

    def app(self) -> Starlette:
        async def image(request: Request) -> Response:
            self.hits += 1
            size = int(request.query_params.get("size", "0"))
            delay = float(request.query_params.get("delay", "0"))
            trickle = float(request.query_params.get("trickle", "0"))
            if trickle:
                async def drip():
                    for _ in range(50):  # each read well inside any per-read timeout
                        yield b"\0" * 10
                        await asyncio.sleep(trickle)
                return StreamingResponse(drip(), media_type="image/png")
            await asyncio.sleep(delay)
            return Response(PNG + b"\0" * size, media_type="image/png")

        return Starlette(routes=[Route("/img.png", image)])


@contextmanager
def image_budget(customer: Customer, settings, store, monkeypatch,
                 **budget: object) -> Iterator[tuple[Customer, ImageHost, str]]:
    host = ImageHost()

    async def loopback(name: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with serve(host.app()) as images_url, \
            gateway_with(settings, store, customer, **budget) as limited:
        assert limited.gateway is not None
        monkeypatch.setattr(limited.gateway.upstreams, "images", ImageFetcher(
            resolver=loopback, is_allowed=lambda address: True, schemes=("http",)))
        yield limited, host, images_url


def image_request(*urls: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What are these?"}, *[
        {"type": "image_url", "image_url": {"url": url}} for url in urls]]}]


def assert_refused_unbilled(customer: Customer, fake_gemini) -> None:
    """Nothing reached Gemini and nothing was charged (whether the fetch ran under
    the call's hold, settled for nothing, or before it)."""
    assert fake_gemini.requests == []
    assert customer.balance() == 10
    assert all(c.amount == 0 for c in customer.charges())


def test_image_urls_per_request_are_counted(customer: Customer, settings, store,
                                            monkeypatch, fake_gemini):
    with image_budget(customer, settings, store, monkeypatch,
                      image_fetch_max_images=2) as (limited, host, url), \
            pytest.raises(openai.BadRequestError) as caught:
        limited.openai().chat.completions.create(
            model="gemini-2.5-flash",
            messages=image_request(*[f"{url}/img.png?n={i}" for i in range(3)]))
    assert "3 image URLs" in caught.value.message and "at most 2" in caught.value.message
    assert host.hits == 0
    assert_refused_unbilled(customer, fake_gemini)


def test_image_bytes_per_request_are_bounded_in_all(customer: Customer, settings, store,
                                                    monkeypatch, fake_gemini):
    with image_budget(customer, settings, store, monkeypatch,
                      image_fetch_max_bytes=12_000) as (limited, host, url), \
            pytest.raises(openai.BadRequestError) as caught:
        limited.openai().chat.completions.create(
            model="gemini-2.5-flash",
            messages=image_request(*[f"{url}/img.png?size=5000&n={i}" for i in range(3)]))
    assert "larger than 12000 bytes in all" in caught.value.message
    assert_refused_unbilled(customer, fake_gemini)


def test_image_fetching_has_one_wall_clock_deadline(customer: Customer, settings, store,
                                                    monkeypatch, fake_gemini):
    """A server trickling bytes (every read well within the per-read timeout) cannot
    hold the request past the deadline."""
    with image_budget(customer, settings, store, monkeypatch,
                      image_fetch_seconds=1.0) as (limited, host, url):
        started = time.monotonic()
        with pytest.raises(openai.BadRequestError) as caught:
            limited.openai().chat.completions.create(
                model="gemini-2.5-flash", messages=image_request(f"{url}/img.png?trickle=0.2"))
        elapsed = time.monotonic() - started
    assert "within 1 s in all" in caught.value.message
    assert elapsed < 3.0  # the trickle alone would take 10 s
    assert_refused_unbilled(customer, fake_gemini)


def test_images_of_a_request_are_fetched_concurrently(customer: Customer, settings, store,
                                                      monkeypatch, fake_gemini):
    with image_budget(customer, settings, store, monkeypatch,
                      image_fetch_seconds=1.5) as (limited, host, url):
        # Three images of 0.6 s each: 1.8 s one after another, ~0.6 s together.
        limited.openai().chat.completions.create(
            model="gemini-2.5-flash",
            messages=image_request(*[f"{url}/img.png?delay=0.6&n={i}" for i in range(3)]))
    assert host.hits == 3
    parts = fake_gemini.requests[-1].body["contents"][0]["parts"]
    assert sum("inlineData" in p for p in parts) == 3


# ------------------------------------------------------------------ unknown keys
def test_unknown_keys_are_remembered_briefly(customer: Customer, gateway, monkeypatch):
    lookups = []
    real_lookup = gateway.store.keys.lookup

    def counting_lookup(key: str):
        lookups.append(key)
        return real_lookup(key)

    monkeypatch.setattr(gateway.auth, "_keys", type("K", (), {"lookup": staticmethod(
        counting_lookup)})())
    junk = "afk-" + "J" * 48
    for _ in range(5):
        response = httpx.post(f"{customer.url}/v1/chat/completions",
                              headers={"authorization": f"Bearer {junk}"},
                              json={"model": "echo", "messages": MESSAGES})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert lookups == [junk]


def test_the_unknown_key_cache_is_bounded():
    class NoKeys:
        def lookup(self, key: str) -> None:
            return None

    auth = Authenticator(NoKeys(), ttl=60)  # type: ignore[arg-type]
    auth._unknown._max = 3
    for i in range(10):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(f"afk-{i:048d}")
    assert len(auth._unknown) == 3


# ------------------------------------------------------------------ echo models
def test_echo_models_are_absent_from_a_deployed_catalog(customer: Customer, settings, store):
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "afk-chat"}).echo_models is False
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "afk-chat",
                              "AFK_ECHO_MODELS": "1"}).echo_models is True
    assert Settings.from_env({}).echo_models is True  # afk dev, tests
    with gateway_with(settings, store, customer, echo_models=False) as deployed:
        client = deployed.openai()
        ids = {m.id for m in client.models.list().data}
        assert "echo" not in ids and "echo-large" not in ids and "gpt-4o-mini" in ids
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="echo", messages=MESSAGES)
    assert_untouched(customer)


def test_an_operator_catalog_is_taken_as_written(tmp_path, settings, store, customer):
    from importlib import resources

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(resources.files("afk").joinpath("catalog.yaml").read_text())
    gateway = Gateway(replace(settings, echo_models=False, catalog_path=catalog), store=store)
    assert gateway.catalog.get("echo") is not None
