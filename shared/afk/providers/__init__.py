"""Providers: a codec plus a transport (URL, auth, HTTP) for one upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from afk import ir
from afk.catalog import Model
from afk.records import dataclass
from afk.sse import ServerSentEvent

if TYPE_CHECKING:
    from afk.dialects.base import Decoder
    from afk.errors import GatewayError


@dataclass(slots=True, kw_only=True)
class Call:
    """One upstream call. `passthrough_body` is set when the caller speaks the
    provider's own dialect: the caller's body, patched, forwarded as is."""

    request: ir.Request
    model: Model
    passthrough_body: dict[str, Any] | None = None
    # Caller headers a same-dialect upstream honours (anthropic-version, anthropic-beta).
    caller_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Completion:
    response: ir.Response
    raw: dict[str, Any] | None = None  # the upstream body, for a passthrough
    deployment: Model | None = None  # which of the model's deployments served it


@dataclass(slots=True, kw_only=True)
class Frame:
    """One upstream stream event: its IR meaning, and the raw event for a passthrough."""

    events: list[ir.StreamEvent]
    raw: ServerSentEvent | None = None
    relay: bool = True  # False: a passthrough must not forward this event


@dataclass(slots=True, kw_only=True)
class UpstreamStream:
    """An opened upstream stream: the status was 200, frames follow, in batches
    (what arrived together leaves together)."""

    frames: AsyncIterator[list[Frame]]
    close: Any = field(default=None)  # async callable cancelling the upstream request
    decoder: Decoder[Any] | None = None  # the codec's, in its final state (final_response)
    deployment: Model | None = None  # which of the model's deployments serves it
    # `stop_at(at, error)`: the frames raise `error()` once time.monotonic() passes `at`
    # while waiting for the upstream (one timer per stream); None: the reader bounds
    # each wait itself.
    stop_at: Callable[[float, Callable[[], GatewayError]], None] | None = None

    async def aclose(self) -> None:
        """Stop reading and cancel the upstream request (idempotent)."""
        close_frames = getattr(self.frames, "aclose", None)
        if close_frames is not None:
            await close_frames()
        if self.close is not None:
            await self.close()


class Provider(Protocol):
    name: str

    @property
    def dialect(self) -> str | None:
        """The wire dialect it speaks upstream; None for offline models."""

    async def prepare(self, call: Call) -> None:
        """Make `call` what will be sent (fetch what must travel inline), before the
        hold is quoted."""

    def upstream_body(self, call: Call, *, stream: bool) -> dict[str, Any] | None:
        """The body the upstream will get for `call` (what the hold must cover), or
        None for an offline provider."""

    async def complete(self, call: Call) -> Completion: ...

    async def open_stream(self, call: Call) -> UpstreamStream: ...

    async def count_tokens(self, call: Call) -> int | None: ...


@dataclass(slots=True, kw_only=True)
class Embedded:
    """What a provider's embedding API answered."""

    vectors: list[list[float]]
    input_tokens: int | None  # None: the provider reports no usage


@runtime_checkable
class Embedder(Protocol):
    """A provider with an embedding API (OpenAI, Gemini, Bedrock)."""

    async def embed(self, model: Model, texts: list[str], *,
                    dimensions: int | None) -> Embedded: ...
