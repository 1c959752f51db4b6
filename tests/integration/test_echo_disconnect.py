"""Regression (issue 15.6): a 20,000-word echo stream whose client hung up kept
generating to the end (`socket.send() raised exception` 16,309 times) and was
billed in full as `ok`. It must stop where the client left and be billed as
`disconnected`, for what was generated."""

from __future__ import annotations

import httpx

from tests.conftest import Customer
from tests.fakes.upstream import wait_until

MAX_TOKENS = 16384  # echo-large's output cap: the whole answer, had it run on


def test_echo_stops_when_the_client_leaves_and_bills_it_as_disconnected(customer: Customer):
    prompt = " ".join(f"w{i}" for i in range(20_000))
    body = {"model": "echo-large", "stream": True,
            "messages": [{"role": "user", "content": prompt}]}
    with httpx.Client(base_url=customer.url, timeout=30,
                      headers={"authorization": f"Bearer {customer.key}"}) as http, \
            http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        request_id = response.headers["x-afk-request-id"]
        received = 0
        for chunk in response.iter_raw():
            received += chunk.count(b"data: ")
            if received >= 3:
                break  # hang up: leaving the block closes the connection
    wait_until(lambda: customer.in_flight() == 0, timeout=10)
    [entry] = customer.charges()
    assert entry.request_id == request_id
    assert entry.status == "disconnected" and entry.estimated
    assert 2 <= entry.output_tokens < MAX_TOKENS // 2, entry.output_tokens
    customer.assert_books_balance()
