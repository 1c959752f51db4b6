"""What fails late is billed as the provider bills it (issue 19, part 3): usage
reported with an error, a read timeout after output flowed, and a call stopped
at the function's own deadline. Each asserts the exact charge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from afk.billing.quote import usage_cost
from afk.catalog import Catalog
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.ir import Usage
from tests.conftest import Customer
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_gemini import Reply as GeminiReply
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.support.servers import serve

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Write a long story."}]


def _cost(model: str, **usage: int) -> int:
    return usage_cost(Catalog.load(None).get(model), Usage(**usage))


@contextmanager
def _gateway(settings, store, **changes) -> Iterator[str]:
    with serve(create_app("local", Gateway(replace(settings, **changes), store=store))) as url:
        yield url


def _stream(url: str, key: str) -> str:
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": MODEL, "messages": MESSAGES, "stream": True,
                            "stream_options": {"include_usage": True}}) as response:
        return response.read().decode()


def test_gemini_malformed_function_call_bills_the_usage_it_reports(
        customer: Customer, fake_gemini: FakeGemini):
    """Bug: MALFORMED_FUNCTION_CALL with 200k prompt tokens reported was a 502
    charged $0, while Gemini bills the prompt."""
    fake_gemini.push(GeminiReply(text="call(", finish_reason="MALFORMED_FUNCTION_CALL",
                                 prompt_tokens=200_000, candidates_tokens=3))
    client = genai.Client(api_key=customer.key, http_options=gtypes.HttpOptions(
        base_url=customer.url, api_version="v1beta"))
    with pytest.raises(gerrors.ServerError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="call a tool")
    assert caught.value.code == 502
    [entry] = customer.charges()
    assert (entry.input_tokens, entry.output_tokens, entry.status) == (200_000, 3, "error")
    assert entry.amount == _cost("gemini-2.5-flash", input_tokens=200_000, output_tokens=3)
    customer.assert_books_balance()


def test_a_read_timeout_after_output_flowed_is_billed_like_a_disconnect(
        customer: Customer, settings, store, fake_openai: FakeOpenAI):
    """Bug: a read timeout after 30,000 generated tokens was a 504 charged $0."""
    fake_openai.push(Reply(text="one two three four five six", stall_after=4))
    with _gateway(settings, store, read_timeout=1.0) as url:
        body = _stream(url, customer.key)
    assert '"error"' in body  # the caller is told the stream failed
    [entry] = customer.charges()
    assert entry.status == "timeout" and entry.estimated
    assert entry.output_tokens >= 3 and entry.input_tokens > 0  # prompt + what was generated
    assert entry.amount == _cost(MODEL, input_tokens=entry.input_tokens,
                                 output_tokens=entry.output_tokens) > 0
    customer.assert_books_balance()


def test_a_failure_before_any_output_with_no_usage_costs_nothing(
        customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(status=500, error_message="boom"), Reply(status=500),
                     Reply(status=500))
    response = httpx.post(f"{customer.url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {customer.key}"},
                          json={"model": MODEL, "messages": MESSAGES})
    assert response.status_code >= 500
    assert [e.amount for e in customer.charges()] == [0]
    customer.assert_books_balance()


def test_a_stream_reaching_the_functions_deadline_is_stopped_and_billed(
        customer: Customer, settings, store, fake_openai: FakeOpenAI):
    """Bug: a process killed at the 900 s Lambda timeout was swept for $0 after the
    caller got the answer. Now the function stops the call before its own
    timeout (here 3 s, so after 1 s) and bills what it used."""
    fake_openai.push(Reply(text=" ".join(["word"] * 40), chunk_delay=0.1))
    with _gateway(settings, store, max_call_seconds=3.0) as url:
        body = _stream(url, customer.key)
    assert "deadline_exceeded" in body
    assert "data: [DONE]" not in body
    [entry] = customer.charges()
    assert entry.status == "timeout"
    assert 3 <= entry.output_tokens < 40  # cut after about 1 s of 0.1 s chunks
    assert entry.amount == _cost(MODEL, input_tokens=entry.input_tokens,
                                 output_tokens=entry.output_tokens)
    customer.assert_books_balance()
