"""200 concurrent requests, every dialect, streaming and not, against an account
that can afford a fraction of them: no overdraft, the books balance exactly,
every success has exactly one ledger entry and every refusal none."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import Customer
from tests.fakes.fake_openai import FakeOpenAI, Reply

MODEL = "gpt-4o-mini"
MAX_TOKENS = 1000
QUESTION = "Count to a thousand."


def request_for(i: int, key: str) -> tuple[str, dict, dict]:
    """(path, headers, body) of request i: a rotation over dialects and stream modes."""
    stream = i % 2 == 0
    match (i // 2) % 4:
        case 0:
            return "/v1/chat/completions", {"authorization": f"Bearer {key}"}, {
                "model": MODEL, "stream": stream, "max_completion_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": QUESTION}]}
        case 1:
            return "/v1/messages", {"x-api-key": key}, {
                "model": MODEL, "stream": stream, "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": QUESTION}]}
        case 2:
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            return f"/v1beta/models/{MODEL}:{method}", {"x-goog-api-key": key}, {
                "contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
                "generationConfig": {"maxOutputTokens": MAX_TOKENS}}
        case _:
            return "/v1/responses", {"authorization": f"Bearer {key}"}, {
                "model": MODEL, "stream": stream, "max_output_tokens": MAX_TOKENS,
                "input": QUESTION, "store": False}


async def send(client: httpx.AsyncClient, i: int, key: str) -> tuple[int, str]:
    path, headers, body = request_for(i, key)
    async with client.stream("POST", path, headers=headers, json=body) as response:
        text = (await response.aread()).decode()
    return response.status_code, text


@pytest.mark.slow
def test_200_concurrent_requests_never_overdraw(make_customer, fake_openai: FakeOpenAI):
    # Each call holds and then spends about $0.0006; $0.012 affords about 20 of 200.
    customer: Customer = make_customer(credits="0.012")
    for _ in range(200):
        fake_openai.push(Reply(text="one two three", prompt_tokens=12,
                               completion_tokens=MAX_TOKENS))

    async def run() -> list[tuple[int, str]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=customer.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(send(client, i, customer.key) for i in range(200)))

    results = asyncio.run(run())
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 402}, statuses
    ok = statuses.count(200)
    assert 5 <= ok <= 40, f"{ok} of 200 succeeded"
    for status, text in results:
        if status == 200:
            assert '"error":{' not in text and "response.failed" not in text
        else:
            assert "nsufficient" in text or "afford" in text  # each dialect's 402 says why
    charges = customer.charges()
    assert len(charges) == ok and all(e.status == "ok" for e in charges)
    assert len({e.request_id for e in charges}) == ok
    assert customer.in_flight() == 0
    customer.assert_books_balance()
