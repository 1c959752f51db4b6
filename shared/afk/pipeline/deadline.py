"""How long a call may run, and how an upstream call is retried within that.

Retries happen only before any byte reached the caller (a whole buffered call,
or the opening of a stream), for failures that say "try again".
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from afk.errors import GatewayError, UpstreamTimeout

log = logging.getLogger("afk.pipeline")
T = TypeVar("T")

RETRY_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.25
RETRY_MAX_DELAY = 8.0  # a longer retry-after goes back to the caller instead


def call_budget(max_call_seconds: float) -> float:
    """Seconds a call may run in a function whose timeout is `max_call_seconds`:
    each function stops its upstream call a margin before its own timeout (20 s,
    or a tenth of a short one) and settles, so a call is billed by the function
    that made it, never left for the sweeper (which meets only crashes)."""
    return max(1.0, max_call_seconds - min(20.0, max(2.0, max_call_seconds / 10)))


class Deadline:
    """The monotonic time by which a call must be over (settled, answered): the
    function's call budget, counted from when its hold was taken."""

    def __init__(self, max_call_seconds: float, started_ms: int) -> None:
        self._budget = call_budget(max_call_seconds)
        self.at = time.monotonic() + self._budget - (time.time() - started_ms / 1000)

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def error(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"The model did not finish within this gateway's time limit "
            f"({self._budget:.0f} s); the call was stopped and billed for what it used.",
            code="deadline_exceeded")

    async def call(self, upstream_call: Callable[[], Awaitable[T]]) -> T:
        """Make the upstream call, retried where that is safe, within the deadline
        (past it: `error()`)."""
        try:
            with anyio.fail_after(self.left()):
                return await _with_retries(upstream_call)
        except TimeoutError:
            raise self.error() from None


def _retry_delay(error: GatewayError, attempt: int) -> float | None:
    """Seconds to wait before retrying after `error`, or None for no retry."""
    if not error.retryable or attempt + 1 >= RETRY_ATTEMPTS:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= RETRY_MAX_DELAY else None
    return RETRY_BASE_DELAY * 2.0**attempt * (0.5 + random.random() / 2)


async def _with_retries(call: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return await call()
        except GatewayError as error:
            delay = _retry_delay(error, attempt)
            if delay is None:
                raise
            log.warning("upstream said %s (%s); retry %d in %.2fs", error.status,
                        error.message, attempt + 1, delay)
            await anyio.sleep(delay)
    raise AssertionError("unreachable")
