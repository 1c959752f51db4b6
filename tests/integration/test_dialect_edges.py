"""What Anthropic and Gemini callers see at the edges: errors in their own
dialect's shape and status, token counting that never bills, models listed
the Gemini way."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.conftest import Customer


def anthropic_client(customer: Customer, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=customer.url, api_key=key or customer.key,
                               max_retries=0)


def gemini_client(customer: Customer, key: str | None = None,
                  version: str = "v1beta") -> genai.Client:
    return genai.Client(api_key=key or customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, api_version=version))


def test_anthropic_errors_have_anthropic_shape(customer: Customer):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic_client(customer, "afk-" + "z" * 48).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(customer).messages.create(
            model="claude-unknown", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client(customer).messages.create(
            model="claude-haiku-4-5", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"


def test_anthropic_402_when_credits_run_out(make_customer):
    broke = make_customer(credits="0.000001")
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_client(broke).messages.create(
            model="claude-haiku-4-5", max_tokens=4000,
            messages=[{"role": "user", "content": "a long question " * 20}])
    assert caught.value.status_code == 402
    assert caught.value.body["error"]["type"] == "billing_error"


def test_gemini_errors_have_gemini_shape(customer: Customer):
    # (google-genai closes its HTTP client when the Client is collected: keep references.)
    bad, good = gemini_client(customer, "afk-" + "z" * 48), gemini_client(customer)
    with pytest.raises(gerrors.ClientError) as caught:
        bad.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert caught.value.code == 401
    with pytest.raises(gerrors.ClientError) as caught:
        good.models.generate_content(model="gemini-unknown", contents="x")
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"


def test_count_tokens_moves_no_money(customer: Customer, fake_anthropic, fake_gemini):
    before = customer.statement()
    count = anthropic_client(customer).messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "count these words"}])
    assert count.input_tokens > 0
    assert fake_anthropic.requests[-1].path.endswith("/v1/messages/count_tokens")
    gemini = gemini_client(customer)
    counted = gemini.models.count_tokens(
        model="gemini-2.5-flash", contents="count these words please")
    assert counted.total_tokens > 0
    assert fake_gemini.requests[-1].path.endswith(":countTokens")
    # Counting through a dialect whose provider has no counting API: an offline estimate.
    offline = anthropic_client(customer).messages.count_tokens(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count these words"}])
    assert offline.input_tokens > 0
    after = customer.statement()
    assert (after.remaining, after.charged) == (before.remaining, 0)
    assert customer.in_flight() == 0
    assert customer.charges() == []


def test_gemini_sdk_lists_models_on_its_default_v1(customer: Customer):
    client = gemini_client(customer, version="v1")
    names = {m.name for m in client.models.list()}
    assert "models/gemini-2.5-flash" in names and "models/claude-haiku-4-5" in names
    assert client.models.get(model="gpt-4o-mini").name == "models/gpt-4o-mini"


def test_gemini_json_array_stream_without_alt_sse(customer: Customer, fake_gemini):
    response = httpx.post(
        f"{customer.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        params={"key": customer.key},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert response.status_code == 200
    import json

    chunks = json.loads(response.text)
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]
                   ["parts"])
    assert text and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert len(customer.charges()) == 1


def test_image_urls_reach_gemini_inline_and_private_ones_are_refused(customer: Customer,
                                                                     fake_gemini,
                                                                     monkeypatch):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from afk.providers.images import ImageFetcher
    from tests.support.media import png
    from tests.support.servers import serve

    PNG = png(2, 2)  # a real image: its size is read to price it before the call

    def image_server() -> Starlette:
        return Starlette(routes=[
            Route("/cat.png", lambda r: Response(PNG, media_type="image/png"))])

    client = customer.openai()
    image_message = [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://127.0.0.1/cat.png"}}]}]
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gemini-2.5-flash", messages=image_message)
    assert "not a public address" in caught.value.message
    assert fake_gemini.requests == []
    assert customer.charges() == []  # fetched (and refused) before any credit was held

    with serve(image_server()) as url:
        async def local(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        assert customer.gateway is not None
        monkeypatch.setattr(customer.gateway.upstreams, "images", ImageFetcher(
            resolver=local, is_allowed=lambda a: True, schemes=("http",)))
        image_message[0]["content"][1]["image_url"]["url"] = f"{url}/cat.png"
        client.chat.completions.create(model="gemini-2.5-flash", messages=image_message)
    import base64

    parts = fake_gemini.requests[-1].body["contents"][0]["parts"]
    inline = next(p["inlineData"] for p in parts if "inlineData" in p)
    assert inline["mimeType"] == "image/png" and base64.b64decode(inline["data"]) == PNG


def test_anthropic_beta_query_and_headers_are_accepted(customer: Customer, fake_anthropic):
    response = httpx.post(f"{customer.url}/v1/messages?beta=true",
                          headers={"x-api-key": customer.key, "anthropic-version": "2023-06-01",
                                   "anthropic-beta": "made-up-beta-2099-01-01"},
                          json={"model": "gpt-4o-mini", "max_tokens": 50,
                                "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    passthrough = httpx.post(f"{customer.url}/v1/messages?beta=true",
                             headers={"x-api-key": customer.key,
                                      "anthropic-beta": "made-up-beta-2099-01-01"},
                             json={"model": "claude-haiku-4-5", "max_tokens": 50,
                                   "messages": [{"role": "user", "content": "hi"}]})
    assert passthrough.status_code == 200
    assert fake_anthropic.requests[-1].headers["anthropic-beta"] == "made-up-beta-2099-01-01"


@pytest.mark.parametrize("model, kept", [("gpt-4o-mini", False), ("gpt-5-mini", True)])
def test_reasoning_settings_reach_only_models_that_take_them(customer: Customer, fake_openai,
                                                             model: str, kept: bool):
    """Coding CLIs send effort settings to every model; a model without reasoning
    would answer 400 to them, so they are dropped there (passthrough included)."""
    customer.openai().chat.completions.create(
        model=model, reasoning_effort="high", messages=[{"role": "user", "content": "hi"}])
    assert ("reasoning_effort" in fake_openai.requests[-1].body) is kept
    anthropic_client(customer).messages.create(
        model=model, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hi"}])
    assert ("reasoning_effort" in fake_openai.requests[-1].body) is kept
