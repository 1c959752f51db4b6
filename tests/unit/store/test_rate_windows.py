"""afk.store.keys: the per-key rate limit counts requests in calendar minutes, on
the clock it is given (`now`), so the window arithmetic is tested here without
waiting for a real minute to pass."""

from __future__ import annotations

import secrets

import pytest

from afk.store import Store
from tests.support.tables import new_table

MINUTE = 29_000_000 * 60.0  # the start of some calendar minute (2025-02-19 21:20 UTC)


@pytest.fixture(scope="module")
def store(embedded_dynamodb: str) -> Store:
    return Store(new_table(embedded_dynamodb))


def test_the_limit_holds_to_the_end_of_the_minute_and_resets_with_the_next(store: Store):
    keys, key = store.keys, f"key_{secrets.token_hex(4)}"
    assert keys.count_request(key, 2, now=MINUTE) is None
    assert keys.count_request(key, 2, now=MINUTE + 30) is None
    assert keys.count_request(key, 2, now=MINUTE + 45) == 15  # seconds to the next minute
    assert keys.count_request(key, 2, now=MINUTE + 59.5) == 0.5
    assert keys.count_request(key, 2, now=MINUTE + 60) is None  # a new window
    assert keys.count_request(key, 2, now=MINUTE + 61) is None
    assert keys.count_request(key, 2, now=MINUTE + 62) == 58


def test_each_key_has_its_own_window(store: Store):
    first, second = (f"key_{secrets.token_hex(4)}" for _ in range(2))
    assert store.keys.count_request(first, 1, now=MINUTE) is None
    assert store.keys.count_request(first, 1, now=MINUTE + 1) == 59
    assert store.keys.count_request(second, 1, now=MINUTE + 1) is None
