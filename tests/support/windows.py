"""Per-key rate limits count requests in calendar minutes (store/keys.py)."""

from __future__ import annotations

import time

import pytest

from afk.store.keys import Keys


def one_rate_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """Hold the rate limiter's clock (`Keys.count_request`'s `now`) at the middle of
    the current minute for the rest of the test, in every gateway of this process,
    so the requests a test counts all fall in one window however long it takes: a
    test that straddled a real minute boundary would see its limit reset half-way.
    Returns the seconds left in that window (what a refusal's Retry-After says)."""
    now = time.time() // 60 * 60 + 30
    count = Keys.count_request

    def counted_at_now(self: Keys, key_id: str, rpm: int,
                       at: float | None = None) -> float | None:
        return count(self, key_id, rpm, now if at is None else at)

    monkeypatch.setattr(Keys, "count_request", counted_at_now)
    return 30.0
