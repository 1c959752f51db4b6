"""A provider the gateway holds no key for (issue 12, item 3): a clear, final error
in the caller's dialect naming the missing setting, before any hold and before
anything goes upstream; the model lists leave its models out. A key the provider
refuses is final too.

Bug pinned: the request went upstream unauthenticated and came back a retryable
502, so the SDKs retried and Claude Code printed nothing for two minutes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.conftest import Customer
from tests.fakes.fake_anthropic import Reply as AnthropicReply
from tests.fakes.fake_gemini import Reply as GeminiReply
from tests.support.asgi import Recorder

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def wire(keyless_server) -> Recorder:
    """What the keyless gateway was asked, and answered."""
    return keyless_server[0]


@pytest.fixture
def caller(keyless_server, make_customer, fake_anthropic, fake_gemini) -> Customer:
    app, gateway, url = keyless_server
    app.exchanges.clear()
    return replace(make_customer(), url=url, gateway=gateway)


def assert_refused_before_anything(caller: Customer, app: Recorder, path: str,
                                   fakes: list) -> None:
    assert [e.path for e in app.posts()] == [path]  # the SDK did not retry
    assert all(fake.requests == [] for fake in fakes)  # nothing went upstream
    statement = caller.statement()
    assert statement.leases == [] and statement.held == 0  # no hold, no lease
    assert caller.charges() == [] and caller.balance() == Decimal(10)
    caller.assert_books_balance()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_caller(caller, wire, fake_anthropic, fake_gemini, stream: bool):
    client = openai.OpenAI(base_url=f"{caller.url}/v1", api_key=caller.key)  # retries on
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES,
                                       stream=stream)
    error = caught.value
    assert error.response.headers["x-should-retry"] == "false"
    assert error.code == "provider_not_configured" and error.param == "model"
    assert "ANTHROPIC_API_KEY" in error.message and "claude-haiku-4-5" in error.message
    assert_refused_before_anything(caller, wire, "/v1/chat/completions",
                                   [fake_anthropic, fake_gemini])


@pytest.mark.parametrize("stream", [False, True])
def test_openai_responses_caller(caller, wire, fake_anthropic, fake_gemini, stream: bool):
    client = openai.OpenAI(base_url=f"{caller.url}/v1", api_key=caller.key)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.responses.create(model="gemini-2.5-flash", input="hello", stream=stream)
    assert "GEMINI_API_KEY" in caught.value.message
    assert_refused_before_anything(caller, wire, "/v1/responses",
                                   [fake_anthropic, fake_gemini])


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_caller(caller, wire, fake_anthropic, fake_gemini, stream: bool):
    client = anthropic.Anthropic(base_url=caller.url, api_key=caller.key)  # retries on
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES,
                               stream=stream)
    assert caught.value.body["error"]["type"] == "permission_error"
    assert "ANTHROPIC_API_KEY" in caught.value.body["error"]["message"]
    assert_refused_before_anything(caller, wire, "/v1/messages",
                                   [fake_anthropic, fake_gemini])


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_caller(caller, wire, fake_anthropic, fake_gemini, stream: bool):
    # Retries on, for the statuses google-genai retries (408, 429, 5xx).
    client = genai.Client(api_key=caller.key, http_options=gtypes.HttpOptions(
        base_url=caller.url, api_version="v1beta",
        retry_options=gtypes.HttpRetryOptions(attempts=3, initial_delay=0.01)))
    with pytest.raises(gerrors.ClientError) as caught:
        if stream:
            list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                       contents="hello"))
        else:
            client.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    assert "GEMINI_API_KEY" in caught.value.message
    method = "streamGenerateContent" if stream else "generateContent"
    assert_refused_before_anything(caller, wire,
                                   f"/v1beta/models/gemini-2.5-flash:{method}",
                                   [fake_anthropic, fake_gemini])


def test_counting_tokens_is_refused_the_same_way(caller, wire, fake_anthropic,
                                                 fake_gemini):
    client = anthropic.Anthropic(base_url=caller.url, api_key=caller.key)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.count_tokens(model="claude-haiku-4-5", messages=MESSAGES)
    assert fake_anthropic.requests == []


def test_the_model_lists_leave_keyless_providers_out(caller):
    ids = {m.id for m in openai.OpenAI(base_url=f"{caller.url}/v1", api_key=caller.key,
                                       max_retries=0).models.list()}
    assert "gpt-4o-mini" in ids
    assert not any(i.startswith(("claude", "gemini")) for i in ids)
    client = genai.Client(api_key=caller.key, http_options=gtypes.HttpOptions(
        base_url=caller.url, api_version="v1beta"))
    names = {m.name for m in client.models.list()}
    assert "models/gpt-4o-mini" in names and not any("gemini" in n for n in names)
    # Retrieving one names what is missing, like a call would.
    response = httpx.get(f"{caller.url}/v1/models/claude-haiku-4-5",
                         headers={"authorization": f"Bearer {caller.key}"})
    assert response.status_code == 403 and "ANTHROPIC_API_KEY" in response.text


def test_a_configured_provider_still_answers(caller, fake_openai):
    client = openai.OpenAI(base_url=f"{caller.url}/v1", api_key=caller.key, max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello!"


def test_a_key_the_provider_refuses_is_final_too(customer, fake_anthropic, fake_gemini):
    """The same hang from the other cause: a key is set, but the provider refuses it
    (Anthropic 401; Gemini 400 API_KEY_INVALID). A final 403 naming the setting, not a
    retryable 502: a retry would have reached the fake, whose next answer succeeds."""
    fake_anthropic.push(AnthropicReply(status=401))
    client = openai.OpenAI(base_url=f"{customer.url}/v1", api_key=customer.key)  # retries on
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES)
    assert caught.value.code == "provider_credentials_refused"
    assert "ANTHROPIC_API_KEY" in caught.value.message
    fake_gemini.push(GeminiReply(status=400, error_reason="API_KEY_INVALID"))
    gemini = genai.Client(api_key=customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, api_version="v1beta",
        retry_options=gtypes.HttpRetryOptions(attempts=3, initial_delay=0.01)))
    with pytest.raises(gerrors.ClientError) as failed:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert failed.value.code == 403 and "GEMINI_API_KEY" in failed.value.message
    assert (len(fake_anthropic.requests), len(fake_gemini.requests)) == (1, 1)
    assert [(e.status, e.amount) for e in customer.charges()] == [("error", 0)] * 2
    customer.assert_books_balance()
