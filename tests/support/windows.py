"""Per-key rate limits count requests in calendar minutes (store/keys.py)."""

from __future__ import annotations

import time


def start_of_a_fresh_window(needed: float = 10.0) -> None:
    """Return when at least `needed` seconds of the current minute are left, so
    the requests a test counts all fall in one rate window (waiting for the next
    minute if need be). A test that straddled a boundary would see its limit
    reset half-way and fail for no fault of the gateway."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.1)
