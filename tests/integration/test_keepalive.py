"""Long silent calls (issue 12, item 2): while the upstream says nothing (a reasoning
model thinking before its first token, a `stream: false` answer being written), the
gateway sends bytes every client ignores, so API Gateway's idle timeout never cuts
the call. The official SDKs read through them, stream and not; the transcript shows
they were sent; the bill is what it would have been.

The keepalive gateway (conftest) keeps alive after KEEPALIVE seconds of silence; the
fakes stay silent for several of those."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.conftest import KEEPALIVE, Customer
from tests.fakes.fake_anthropic import Reply as AnthropicReply
from tests.fakes.fake_gemini import Reply as GeminiReply
from tests.fakes.fake_openai import Reply as OpenAIReply
from tests.fakes.upstream import wait_until
from tests.support.asgi import Exchange, Recorder
from tests.support.billing import assert_billed

SILENCE = 5 * KEEPALIVE
ANSWER = "Thought about it for a long time."
MESSAGES = [{"role": "user", "content": "think hard"}]
SSE_KEEPALIVE = b": keepalive\n\n"
BLANK_LINE = b"\n"  # Gemini's SSE and every JSON body: whitespace


def exchange(recorder: Recorder, path: str) -> Exchange:
    [found] = [e for e in recorder.posts() if e.path == path]
    return found


def assert_kept_alive(found: Exchange, keepalive: bytes) -> None:
    """The answer began with keepalives (sent while the upstream was silent), then
    the answer itself, which is not just keepalives."""
    assert found.status == 200
    assert found.chunks[0] == keepalive
    assert any(chunk != keepalive for chunk in found.chunks)


def keepalive_of(stream: bool) -> bytes:
    """What the SSE dialects (Chat, Responses, Messages) send: a comment in a stream,
    whitespace before a JSON body."""
    return SSE_KEEPALIVE if stream else BLANK_LINE


def assert_answered(customer: Customer, text: str, model: str, found: Exchange,
                    keepalive: bytes) -> None:
    """The SDK read through the keepalives to the answer, billed as always."""
    assert text == ANSWER
    assert_kept_alive(found, keepalive)
    assert_billed(customer, model, 1, (900, 7))


@pytest.fixture
def recorder(keepalive_server) -> Recorder:
    return keepalive_server[0]


def openai_client(customer: Customer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{customer.url}/v1", api_key=customer.key, max_retries=0)


def openai_text(client: openai.OpenAI, path: str, stream: bool) -> str:
    """The answer, through the SDK's Chat Completions or Responses API."""
    if path == "/v1/responses" and stream:
        with client.responses.stream(model="gpt-4o-mini", input="think hard") as events:
            return events.get_final_response().output_text
    if path == "/v1/responses":
        return client.responses.create(model="gpt-4o-mini", input="think hard").output_text
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True) if c.choices)
    return client.chat.completions.create(model="gpt-4o-mini",
                                          messages=MESSAGES).choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_openai_sdk(patient_customer, recorder, fake_openai, path: str, stream: bool):
    fake_openai.push(openai_reply())
    text = openai_text(openai_client(patient_customer), path, stream)
    assert_answered(patient_customer, text, "gpt-4o-mini", exchange(recorder, path),
                    keepalive_of(stream))


@pytest.mark.parametrize("stream", [False, True])
def test_messages(patient_customer, recorder, fake_anthropic, stream: bool):
    fake_anthropic.push(anthropic_reply())
    client = anthropic.Anthropic(base_url=patient_customer.url, api_key=patient_customer.key,
                                 max_retries=0)
    if stream:
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=1000,
                                    messages=MESSAGES) as events:
            text = events.get_final_text()
    else:
        text = client.messages.create(model="claude-haiku-4-5", max_tokens=1000,
                                      messages=MESSAGES).content[0].text
    assert_answered(patient_customer, text, "claude-haiku-4-5",
                    exchange(recorder, "/v1/messages"),
                    keepalive_of(stream))


def gemini_client(customer: Customer) -> genai.Client:
    return genai.Client(api_key=customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, api_version="v1beta"))


@pytest.mark.parametrize("stream", [False, True])
def test_gemini(patient_customer, recorder, fake_gemini, stream: bool):
    fake_gemini.push(gemini_reply())
    client = gemini_client(patient_customer)
    if stream:
        text = "".join(c.text or "" for c in client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="think hard"))
        method = "streamGenerateContent"
    else:
        text = client.models.generate_content(model="gemini-2.5-flash",
                                              contents="think hard").text
        method = "generateContent"
    # Blank lines in SSE too: google-genai parses a comment line as JSON and fails.
    assert_answered(patient_customer, text, "gemini-2.5-flash",
                    exchange(recorder, f"/v1beta/models/gemini-2.5-flash:{method}"),
                    BLANK_LINE)


def test_gemini_json_array_stream(patient_customer, recorder, fake_gemini):
    """`streamGenerateContent` without `alt=sse`: one JSON array, whitespace first."""
    fake_gemini.push(gemini_reply())
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    response = httpx.post(patient_customer.url + path, timeout=30,
                          params={"key": patient_customer.key},
                          json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert response.headers["content-type"] == "application/json"
    chunks = json.loads(response.content)
    assert "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"]
                   ) == ANSWER
    assert_kept_alive(exchange(recorder, path), BLANK_LINE)
    assert_billed(patient_customer, "gemini-2.5-flash", 1, (900, 7))


def test_silence_between_events_is_kept_alive(patient_customer, recorder, fake_anthropic):
    """A stream already under way that goes quiet (thinking between blocks)."""
    reply = anthropic_reply()
    reply.delay, reply.chunk_delay = 0, 2 * KEEPALIVE
    fake_anthropic.push(reply)
    client = anthropic.Anthropic(base_url=patient_customer.url, api_key=patient_customer.key,
                                 max_retries=0)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=1000,
                                messages=MESSAGES) as events:
        assert events.get_final_text() == ANSWER
    chunks = exchange(recorder, "/v1/messages").chunks
    events_seen = [i for i, chunk in enumerate(chunks) if chunk != SSE_KEEPALIVE]
    assert any(chunks[i] == SSE_KEEPALIVE for i in range(events_seen[0], events_seen[-1]))
    assert_billed(patient_customer, "claude-haiku-4-5", 1, (900, 7))


# ------------------------------------------------------------------ failures after the start
def test_a_buffered_call_failing_after_keepalives_is_a_valid_error_body(
        patient_customer, recorder, fake_openai):
    """The 200 is gone with the first keepalive: the body is the dialect's error object
    (whitespace first, valid JSON), and nothing is charged."""
    fake_openai.push(OpenAIReply(status=500, delay=SILENCE))
    response = httpx.post(f"{patient_customer.url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {patient_customer.key}"},
                          json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert response.status_code == 200 and response.content.startswith(BLANK_LINE)
    error = response.json()["error"]
    assert error["type"] == "server_error" and "openai upstream" in error["message"]
    assert "x-afk-cost" not in response.headers
    [entry] = patient_customer.charges()
    assert (entry.status, entry.amount) == ("error", 0)
    assert patient_customer.in_flight() == 0
    patient_customer.assert_books_balance()


def test_a_stream_failing_after_keepalives_raises_in_the_sdk(patient_customer, recorder,
                                                             fake_anthropic, fake_gemini):
    fake_anthropic.push(AnthropicReply(status=500, delay=SILENCE))
    client = anthropic.Anthropic(base_url=patient_customer.url, api_key=patient_customer.key,
                                 max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(
            model="claude-haiku-4-5", max_tokens=1000, messages=MESSAGES) as events:
        events.get_final_text()
    assert "anthropic upstream" in str(caught.value)
    fake_gemini.push(GeminiReply(status=400, delay=SILENCE))  # (a 500 would be retried)
    gemini = gemini_client(patient_customer)  # (kept: collecting it closes its HTTP client)
    with pytest.raises(gerrors.APIError) as failed:
        list(gemini.models.generate_content_stream(model="gemini-2.5-flash",
                                                   contents="think hard"))
    assert failed.value.code == 400
    assert all(e.status == 200 and e.chunks[0] in (SSE_KEEPALIVE, BLANK_LINE)
               for e in recorder.posts())
    assert [e.amount for e in patient_customer.charges()] == [0, 0]
    patient_customer.assert_books_balance()


# ------------------------------------------------------------------ scripted replies
def openai_reply() -> OpenAIReply:
    return OpenAIReply(text=ANSWER, prompt_tokens=900, completion_tokens=7, delay=SILENCE)


def anthropic_reply() -> AnthropicReply:
    return AnthropicReply(text=ANSWER, input_tokens=900, output_tokens=7, delay=SILENCE)


def gemini_reply() -> GeminiReply:
    return GeminiReply(text=ANSWER, prompt_tokens=900, candidates_tokens=7, delay=SILENCE)


def test_a_caller_gone_during_the_silence_is_settled(patient_customer, fake_anthropic):
    """Ctrl-C while the model thinks: when the upstream stream opens, the caller is
    known to be gone, so the upstream is closed and the hold settled at once (not
    left to the sweeper)."""
    fake_anthropic.push(anthropic_reply())
    with httpx.stream("POST", f"{patient_customer.url}/v1/messages", timeout=30,
                      headers={"x-api-key": patient_customer.key},
                      json={"model": "claude-haiku-4-5", "max_tokens": 1000,
                            "messages": MESSAGES, "stream": True}) as response:
        assert next(response.iter_raw()) == SSE_KEEPALIVE
    assert wait_until(lambda: len(fake_anthropic.requests) == 1, timeout=5)
    assert wait_until(lambda: patient_customer.in_flight() == 0, timeout=5)
    [entry] = patient_customer.charges()
    assert entry.status == "disconnected"
    patient_customer.assert_books_balance()
