"""JSON the standard parser accepts but no upstream (or our own code) can take
is the caller's 400, in the caller's dialect, before any hold and before any
upstream call (issue 19, part 5): nesting 10^5 deep, lone surrogates, NaN and
Infinity, numbers past a float, an object with a key twice."""

from __future__ import annotations

import json

import httpx
import pytest

from afk.http.json_input import MAX_DEPTH
from tests.conftest import Customer

HI = [{"role": "user", "content": "hi"}]
ROUTES = {  # dialect -> (path, a valid body for an upstream model)
    "chat": ("/v1/chat/completions", '{"model": "gpt-4o-mini", "messages": %s}'),
    "responses": ("/v1/responses", '{"model": "gpt-4o-mini", "input": %s}'),
    "anthropic": ("/v1/messages",
                  '{"model": "claude-haiku-4-5", "max_tokens": 20, "messages": %s}'),
    "gemini": ("/v1beta/models/gemini-2.5-flash:generateContent", '{"contents": %s}'),
    "anthropic count": ("/v1/messages/count_tokens",
                        '{"model": "claude-haiku-4-5", "messages": %s}'),
    "gemini count": ("/v1beta/models/gemini-2.5-flash:countTokens", '{"contents": %s}'),
}
MESSAGES = {  # dialect -> a valid message list, with %s where a text goes
    "chat": '[{"role": "user", "content": %s}]',
    "responses": '[{"role": "user", "content": %s}]',
    "anthropic": '[{"role": "user", "content": %s}]',
    "anthropic count": '[{"role": "user", "content": %s}]',
    "gemini": '[{"role": "user", "parts": [{"text": %s}]}]',
    "gemini count": '[{"role": "user", "parts": [{"text": %s}]}]',
}
DEEP = "[" * 100_000 + "]" * 100_000

CASES = {  # case -> (what replaces the text, words the 400 must say)
    "nested 10^5 deep": (DEEP, f"more than {MAX_DEPTH} levels"),
    "lone high surrogate": ('"\\ud800 alone"', "unpaired UTF-16 surrogate"),
    "lone low surrogate": ('"x\\udfff"', "unpaired UTF-16 surrogate"),
    "NaN": ("NaN", "NaN is not a JSON number"),
    "Infinity": ("Infinity", "Infinity is not a JSON number"),
    "-Infinity": ("-Infinity", "-Infinity is not a JSON number"),
    "a number past a float": ("1e999", "too large"),
}


def body_with(dialect: str, text: str) -> bytes:
    return (ROUTES[dialect][1] % (MESSAGES[dialect] % text)).encode()


def post(customer: Customer, dialect: str, raw: bytes) -> httpx.Response:
    return httpx.post(customer.url + ROUTES[dialect][0], content=raw, timeout=30,
                      headers={"authorization": f"Bearer {customer.key}",
                               "content-type": "application/json"})


def assert_dialect_400(response: httpx.Response, dialect: str, words: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    if dialect.startswith("anthropic"):
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    elif dialect.startswith("gemini"):
        assert body["error"]["status"] == "INVALID_ARGUMENT" and body["error"]["code"] == 400
        message = body["error"]["message"]
    else:
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    assert words in message, message


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini):
    return (fake_openai, fake_anthropic, fake_gemini)


def assert_nothing_happened(customer: Customer, fakes) -> None:
    assert all(fake.requests == [] for fake in fakes)
    assert customer.balance() == 10
    assert customer.ledger()[1:] == []  # only the opening credit: no hold was settled


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dialect", list(ROUTES))
def test_unacceptable_json_is_a_400_in_the_callers_dialect(customer: Customer, fakes,
                                                          dialect: str, case: str):
    text, words = CASES[case]
    assert_dialect_400(post(customer, dialect, body_with(dialect, text)), dialect, words)
    assert_nothing_happened(customer, fakes)


@pytest.mark.parametrize("dialect", list(ROUTES))
def test_a_key_given_twice_is_a_400_in_the_callers_dialect(customer: Customer, fakes,
                                                          dialect: str):
    raw = body_with(dialect, '"hi"')
    twice = raw.replace(b"{", b'{"model": "gpt-4o-mini", ', 1) if b'"model"' in raw \
        else raw.replace(b'{"text"', b'{"text": "first", "text"', 1)
    assert_dialect_400(post(customer, dialect, twice), dialect, "appears twice in one object")
    assert_nothing_happened(customer, fakes)


def test_gemini_candidate_count_given_twice_is_a_400(customer: Customer, fake_gemini):
    """The measured case: `candidateCount: 4` next to `candidateCount: 1`."""
    raw = (b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": '
           b'{"candidateCount": 4, "candidateCount": 1}}')
    response = post(customer, "gemini", raw)
    assert_dialect_400(response, "gemini", "'candidateCount' appears twice")
    assert fake_gemini.requests == []


def test_what_is_valid_still_passes(customer: Customer, fake_openai):
    """Escaped surrogate pairs (what json.dumps sends for an emoji), brackets and
    quotes inside strings, and nesting up to the limit are all fine."""
    text = json.dumps('\U0001F600 "[[[{{{" \\ ' + "[" * 500)  # ensure_ascii: \ud83d\ude00
    assert "\\ud83d\\ude00" in text
    schema: dict = {"type": "string"}
    for _ in range(MAX_DEPTH // 2 - 4):  # each level is two JSON levels
        schema = {"type": "object", "properties": {"x": schema}}
    body = json.loads(body_with("chat", text))
    body["tools"] = [{"type": "function", "function": {"name": "deep", "parameters": schema}}]
    response = httpx.post(f"{customer.url}/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {customer.key}"})
    assert response.status_code == 200, response.text
    sent = fake_openai.requests[-1].body["messages"][0]["content"]
    assert sent.startswith('\U0001F600 "[[[{{{"')
