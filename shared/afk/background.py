"""Store work no request waits for: lease renewals ahead of need, cache
refreshes, `last_used`.

One worker thread per process, started on first use. A job submitted while
one with the same key is still pending is dropped (ten requests that find the
lease running low renew it once). Failures are logged, never raised: every
job here is an optimisation the request path can do without (it falls back
to doing the work itself when the lease or the cache entry runs out).

On Lambda the thread is frozen with the environment between invocations and
resumes when the next one thaws it; a job frozen mid-call is retried or
superseded by the request path, and every job is safe to run twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("afk.background")


class Background:
    def __init__(self) -> None:
        self._pending: set[Hashable] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, key: Hashable, job: Callable[[], object]) -> bool:
        """Run `job` soon on the worker unless a job under `key` is pending.
        Never blocks. Returns whether it was queued."""
        with self._lock:
            if key in self._pending:
                return False
            self._pending.add(key)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="afk-background")
            executor = self._executor
        executor.submit(self._run, key, job)
        return True

    def _run(self, key: Hashable, job: Callable[[], object]) -> None:
        try:
            job()
        except Exception:  # noqa: BLE001 - see the module docstring
            log.warning("background job %r failed", key, exc_info=True)
        finally:
            with self._lock:
                self._pending.discard(key)
                if not self._pending:
                    self._idle.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is pending (shutdown, tests). Returns whether it got there."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending, timeout)


class Inline(Background):
    """Runs each job at once in the caller's thread (deterministic unit tests)."""

    def submit(self, key: Hashable, job: Callable[[], object]) -> bool:
        with self._lock:
            if key in self._pending:
                return False
            self._pending.add(key)
        self._run(key, job)
        return True
