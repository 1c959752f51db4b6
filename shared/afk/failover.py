"""Failover between the deployments of a model (a catalog model's `fallbacks`).

A call goes to the model's first deployment that is not resting; if it fails before
any byte reached the caller with a failure that says the deployment, not the
request, is at fault (429, a 5xx, a connection that never opened, a timeout), it
moves to the next. A deployment that fails `TRIP_AFTER` times in a row rests for
`REST_SECONDS` in this environment (one Lambda container: what it saw), skipped
while the others are tried; if all rest, they are all tried anyway.

`FailoverProvider` is a Provider like any other: the pipeline quotes the hold at
the model's worst case (catalog `Model.worst_case`) and charges what the serving
deployment (`Completion.deployment`, `UpstreamStream.deployment`) costs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import field, replace
from typing import Any, TypeVar

from afk.catalog import Model
from afk.errors import GatewayError, InvalidRequest, RateLimited
from afk.providers import Call, Completion, Provider, UpstreamStream
from afk.records import dataclass

log = logging.getLogger("afk.failover")
T = TypeVar("T")

TRIP_AFTER = 3
REST_SECONDS = 30.0


def moves_on(error: GatewayError) -> bool:
    """The deployment is at fault: another may answer the same request."""
    return isinstance(error, RateLimited) or error.status >= 500


@dataclass
class Breaker:
    """Consecutive failures per deployment, and until when a tripped one rests."""

    trip_after: int = TRIP_AFTER
    rest_seconds: float = REST_SECONDS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)
    _resting_until: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resting(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return self._resting_until.get(key, 0.0) > self.clock()

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            count = self._failures[key] = self._failures.get(key, 0) + 1
            if count >= self.trip_after:
                self._resting_until[key] = self.clock() + self.rest_seconds
                self._failures[key] = 0

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._resting_until.pop(key, None)


def _key(model: Model) -> tuple[str, str]:
    return model.provider, model.upstream


class FailoverProvider:
    """The deployments of one model, each with its provider, tried in order."""

    def __init__(self, deployments: list[tuple[Model, Provider]], breaker: Breaker) -> None:
        self.deployments = deployments  # built per call (Gateway.provider_for)
        self.breaker = breaker
        self.name = deployments[0][1].name
        dialects = {provider.dialect for _, provider in deployments}
        # A passthrough only when every deployment speaks the caller's dialect.
        self.dialect = dialects.pop() if len(dialects) == 1 else None

    def _call(self, call: Call, model: Model) -> Call:
        body = call.passthrough_body
        if body is not None and "model" in body:
            body = {**body, "model": model.upstream}
        return replace(call, model=model, passthrough_body=body)

    async def prepare(self, call: Call) -> None:
        for model, provider in self.deployments:
            await provider.prepare(self._call(call, model))

    def upstream_body(self, call: Call, *, stream: bool) -> dict[str, Any] | None:
        """The largest body any deployment would get: what the hold must cover. A
        deployment that cannot take this request (it cannot express a setting the
        caller sent) is left out of this call; if none can, the first one's 400."""
        bodies, fit, refusal = [], [], None
        for model, provider in self.deployments:
            try:
                bodies.append(provider.upstream_body(self._call(call, model), stream=stream))
            except InvalidRequest as refused:
                refusal = refusal or refused
                continue
            fit.append((model, provider))
        if not fit:
            assert refusal is not None
            raise refusal
        self.deployments = fit
        sized = [b for b in bodies if b is not None]
        return max(sized, key=lambda b: len(json.dumps(b, ensure_ascii=False)), default=None)

    async def complete(self, call: Call) -> Completion:
        async def attempt(model: Model, provider: Provider) -> Completion:
            completion = await provider.complete(self._call(call, model))
            completion.deployment = model
            return completion

        return await self._first_answer(attempt)

    async def open_stream(self, call: Call) -> UpstreamStream:
        async def attempt(model: Model, provider: Provider) -> UpstreamStream:
            stream = await provider.open_stream(self._call(call, model))
            stream.deployment = model
            return stream

        return await self._first_answer(attempt)

    async def count_tokens(self, call: Call) -> int | None:
        model, provider = self.deployments[0]
        return await provider.count_tokens(self._call(call, model))

    async def _first_answer(self, attempt: Callable[[Model, Provider], Awaitable[T]]) -> T:
        awake = [d for d in self.deployments if not self.breaker.resting(_key(d[0]))]
        error: GatewayError | None = None
        for model, provider in awake or self.deployments:
            try:
                answer = await attempt(model, provider)
            except GatewayError as failure:
                if not moves_on(failure):
                    raise
                self.breaker.failed(_key(model))
                log.warning("deployment %s/%s of %s failed (%s); trying the next",
                            model.provider, model.upstream, model.id, failure.status)
                error = failure
                continue
            self.breaker.succeeded(_key(model))
            return answer
        assert error is not None
        raise error
