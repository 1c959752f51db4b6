"""Nothing leaks (issue 19, part 5): an upstream's error text never reaches the
caller, in any dialect, before or after a stream started (provider, status and
error type are kept, in our own words); and no log line of `afk dev` carries a
caller's key (`?key=` included) or a provider key, whatever uvicorn does to the
logging setup."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.conftest import UPSTREAM_KEY, Customer
from tests.fakes import fake_anthropic as fa
from tests.fakes import fake_gemini as fg
from tests.fakes import fake_openai as fo

ORG = "org-8fJw2kQ0aZ1xYt7PqLmN3vBc"
UPSTREAM_TEXT = (f"Rate limit reached for gpt-4o-mini in organization {ORG} on tokens per min "
                 f"(TPM): Limit 500000, Used 499990, Requested 20. Key {UPSTREAM_KEY}.")
NEVER = (ORG, "499990", "500000", UPSTREAM_KEY, "Rate limit reached")
HI = [{"role": "user", "content": "hi"}]

# dialect -> (path, body, model's provider)
CALLS = {
    "chat": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI}, "openai"),
    "responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}, "openai"),
    "anthropic": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 50,
                                   "messages": HI}, "anthropic"),
    "gemini": ("/v1beta/models/gemini-2.5-flash:{method}",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, "gemini"),
}


def _script(dialect: str, fakes: dict, **reply: object) -> None:
    provider = CALLS[dialect][2]
    module = {"openai": fo, "anthropic": fa, "gemini": fg}[provider]
    if provider == "openai" and "status" in reply:
        reply = {"error_type": "tokens", "error_code": "rate_limit_exceeded", **reply}
    # Gemini's errors carry no x-should-retry: a 429 is retried twice.
    fakes[provider].push(*[module.Reply(**reply)] * 3)


def _post(customer: Customer, dialect: str, *, stream: bool) -> httpx.Response:
    path, body, _ = CALLS[dialect]
    if dialect == "gemini":
        path = path.format(method="streamGenerateContent?alt=sse" if stream
                           else "generateContent")
    elif stream:
        body = {**body, "stream": True}
    return httpx.post(f"{customer.url}{path}", json=body, timeout=30,
                      headers={"authorization": f"Bearer {customer.key}"})


def _assert_clean(text: str) -> None:
    for secret in NEVER:
        assert secret not in text, f"{secret!r} reached the caller: {text}"


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini) -> dict:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", list(CALLS))
def test_an_upstream_error_reaches_the_caller_in_our_words(customer: Customer, fakes,
                                                           dialect: str, stream: bool):
    _script(dialect, fakes, status=429, error_message=UPSTREAM_TEXT)
    response = _post(customer, dialect, stream=stream)
    assert response.status_code == 429
    _assert_clean(response.text)
    provider = CALLS[dialect][2]
    error = response.json()["error"]
    message = error["message"]
    assert f"The {provider} upstream is rate-limiting the gateway" in message
    assert "HTTP 429" in message and message.endswith("Retry later.")
    kind = {"openai": "tokens", "anthropic": "rate_limit_error",
            "gemini": "RESOURCE_EXHAUSTED"}[provider]
    assert kind in message  # the upstream's own error type, kept
    if dialect == "anthropic":
        assert response.json()["type"] == "error" and error["type"] == "rate_limit_error"
    if dialect == "gemini":
        assert error["status"] == "RESOURCE_EXHAUSTED" and error["code"] == 429
    assert customer.balance() == 10


@pytest.mark.parametrize("dialect", list(CALLS))
def test_a_mid_stream_upstream_error_reaches_the_caller_in_our_words(customer: Customer,
                                                                     fakes, dialect: str):
    if dialect == "responses":
        _script(dialect, fakes, text="partial answer", failed=UPSTREAM_TEXT)
    else:
        _script(dialect, fakes, text="partial answer", mid_stream_error=UPSTREAM_TEXT)
    response = _post(customer, dialect, stream=True)
    assert response.status_code == 200  # the stream had started
    assert "partial" in response.text
    _assert_clean(response.text)
    assert f"The {CALLS[dialect][2]} upstream" in response.text


def test_the_sdks_still_raise_the_right_exceptions(customer: Customer, fakes):
    """The reworded errors keep each SDK's mapping: status, type, retry hints."""
    for dialect in ("chat", "anthropic", "gemini"):
        _script(dialect, fakes, status=429, error_message=UPSTREAM_TEXT)
    with pytest.raises(openai.RateLimitError) as caught_openai:
        customer.openai().chat.completions.create(model="gpt-4o-mini", messages=HI)
    with pytest.raises(anthropic.RateLimitError) as caught_anthropic:
        anthropic.Anthropic(base_url=customer.url, api_key=customer.key,
                            max_retries=0).messages.create(model="claude-haiku-4-5",
                                                           max_tokens=5, messages=HI)
    client = genai.Client(api_key=customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, retry_options=gtypes.HttpRetryOptions(attempts=1)))
    with pytest.raises(gerrors.ClientError) as caught_gemini:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught_gemini.value.code == 429
    for caught in (caught_openai, caught_anthropic, caught_gemini):
        _assert_clean(str(caught.value))


def test_an_upstream_400_keeps_its_code_and_param_but_not_its_text(customer: Customer,
                                                                   fake_openai):
    fake_openai.push(fo.Reply(status=400, error_type="invalid_request_error",
                              error_code="context_length_exceeded",
                              error_message=f"This model's maximum context length is 128000 "
                                            f"tokens (organization {ORG})."))
    with pytest.raises(openai.BadRequestError) as caught:
        customer.openai().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert caught.value.code == "context_length_exceeded"
    assert "refused the request as invalid" in caught.value.message
    assert ORG not in str(caught.value.body) and "128000" not in str(caught.value.body)


# ------------------------------------------------------------------ afk dev's logs
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_afk_dev_logs_never_show_a_key(fake_openai, fake_openai_server):
    """`afk dev` at its most verbose (debug: uvicorn's access log, which prints
    query strings), its logging configured by uvicorn after the app was built:
    neither a caller's key (`?key=`, a header) nor the provider key appears."""
    provider_key = "prov" + secrets.token_hex(16)  # no known key shape: redacted by value
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    env.update(OPENAI_BASE_URL=f"{fake_openai_server[1]}/v1", OPENAI_API_KEY=provider_key,
               PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "afk", "dev", "--port", str(port), "--log-level", "debug"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")),
                              daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        demo = None
        while demo is None and time.monotonic() < deadline:
            found = [re.match(r"AFK_API_KEY=(afk-\w+)$", line.strip()) for line in output]
            demo = next((m.group(1) for m in found if m), None)
            time.sleep(0.05)
        assert demo, "afk dev printed no key:\n" + "".join(output)
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        key = httpx.post(f"{url}/v1/account/keys", json={"name": "logs"},
                         headers={"authorization": f"Bearer {demo}"}).json()["key"]
        leaky = f"upstream trouble for {ORG} with key {provider_key}"
        fake_openai.push(fo.Reply(status=500, error_message=leaky),
                         fo.Reply(status=429, error_message=leaky),
                         fo.Reply(text="partial", mid_stream_error=leaky))
        assert httpx.get(f"{url}/v1/models", params={"key": key}).status_code == 200
        failures = [httpx.post(f"{url}/v1/chat/completions", params={"key": key},
                               json={"model": "gpt-4o-mini", "messages": HI}, timeout=30)
                    for _ in range(2)]
        assert [f.status_code for f in failures] == [502, 429]
        streamed = httpx.post(f"{url}/v1/chat/completions", params={"key": key},
                              json={"model": "gpt-4o-mini", "messages": HI, "stream": True},
                              timeout=30)
        assert streamed.status_code == 200
        httpx.post(f"{url}/v1/messages", headers={"x-api-key": key},
                   json={"model": "no-such-model", "max_tokens": 5, "messages": HI})
        httpx.get(f"{url}/v1/account", params={"key": "afk-" + "Q" * 48})
        for response in (*failures, streamed):
            assert provider_key not in response.text and ORG not in response.text
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=5)
    logged = "".join(output)
    assert "GET /v1/models?key=[REDACTED]" in logged  # the access log ran, redacted
    assert "the openai upstream answered HTTP 429" in logged
    assert key not in logged and key[4:20] not in logged
    assert provider_key not in logged and ORG not in logged
    assert "Q" * 48 not in logged
    assert logged.count(demo) == 1  # the banner that hands it out, and nowhere else
