"""A reserved call on its way to the caller: what answering it needs, and what
the HTTP layer gets back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import field
from typing import Any, Protocol

from afk import ir, sse
from afk.catalog import Model
from afk.dialects.base import Codec, Echo
from afk.pipeline.deadline import Deadline
from afk.pipeline.reservation import Reservation
from afk.providers import Call
from afk.records import dataclass


class Stream(Protocol):
    """A streamed answer: a batch of events per write. Whoever sends it closes it,
    however sending ends: a stream closed unread settles its call then."""

    def __aiter__(self) -> AsyncIterator[list[sse.ServerSentEvent]]: ...

    async def __anext__(self) -> list[sse.ServerSentEvent]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Outcome:
    """What the HTTP layer sends: a JSON body, or a stream of events (framed by
    the HTTP layer: SSE, or Gemini's JSON array). A passthrough event keeps the
    upstream's exact bytes in `raw`."""

    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    stream: Stream | None = None


@dataclass(slots=True, kw_only=True)
class Turn:
    """What a stateful dialect (Responses) adds to a generation.

    `echo` reaches the caller-side encoder and `render_response` (the response
    id and the request fields a response object echoes); `relay`
    rewrites each relayed passthrough event (the upstream's response id
    becomes ours); `completed` runs once the answer is complete and billed,
    before its terminal event reaches the caller (so the turn is stored by then).
    """

    echo: Echo | None = None
    relay: Callable[[sse.ServerSentEvent], sse.ServerSentEvent] | None = None
    completed: Callable[[ir.Response, dict[str, Any] | None], Awaitable[None]] | None = None


@dataclass(slots=True, kw_only=True)
class Answering:
    """A call whose hold is reserved: the caller's codec, the upstream call, the
    reservation that bills it, its deadline, and the response headers so far."""

    codec: Codec
    call: Call
    reservation: Reservation
    deadline: Deadline
    turn: Turn
    headers: dict[str, str]

    @property
    def passthrough(self) -> bool:
        return self.call.passthrough_body is not None

    def served_by(self, deployment: Model | None) -> None:
        """The call is billed at what the deployment that serves it costs; the caller
        is told which one it was."""
        deployment = deployment or self.call.model
        self.reservation.model = deployment
        self.headers["x-afk-provider"] = deployment.provider
