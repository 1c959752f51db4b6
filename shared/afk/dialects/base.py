"""The codec contract: what every dialect package implements in full, checked by
mypy (a module satisfies a Protocol when its names match). A dialect with nothing
to do for a member still has it, as a no-op, so nothing probes with `hasattr`.

Two sides: `UpstreamCodec` is what a provider needs to speak to an upstream
(Bedrock's Converse codec has only this side: no caller speaks it); `Codec` adds
the caller's side. Streams are state machines: a `Decoder` turns upstream events
into IR events, an `Encoder` IR events into the caller's events; neither sees bytes
(framing is the HTTP layer's, and the provider's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from afk import ir
from afk.errors import GatewayError
from afk.sse import ServerSentEvent

if TYPE_CHECKING:
    from afk.catalog import Model

Event = TypeVar("Event", contravariant=True)  # one upstream stream event, as framed
Echo = dict[str, Any]  # what a stateful dialect's answers repeat of the request


class Decoder(Protocol[Event]):
    """Upstream stream events -> IR stream events, for one call."""

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """The IR events `event` stands for; raises a GatewayError for an in-stream
        error or a broken stream."""
        ...

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream: raises if the answer is truncated."""
        ...

    def passthrough(self, event: Event, *, include_usage: bool) -> ServerSentEvent | None:
        """The event just fed as a same-dialect caller gets it, or None to drop it."""
        ...

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        """`error`, after a relayed stream started, as the caller's events (framed from
        where the relayed stream stands, for a stateful dialect)."""
        ...

    @property
    def done(self) -> bool:
        """The terminal event was seen."""
        ...

    @property
    def final_response(self) -> dict[str, Any] | None:
        """The upstream's own final response object, where its stream carries one."""
        ...


class Encoder(Protocol):
    """IR stream events -> the caller's events, for one answer."""

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]: ...

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        """`error`, after the stream started, as the caller's events."""
        ...


class UpstreamCodec(Protocol[Event]):
    """What a provider needs of the dialect its upstream speaks."""

    @property
    def DIALECT(self) -> str: ...  # noqa: N802 - the module constant it stands for

    def render_request(self, request: ir.Request, *, model: str) -> dict[str, Any]: ...

    def parse_response(self, body: Any) -> ir.Response: ...

    def error_from_body(self, body: Any, *, status: int) -> GatewayError: ...

    def StreamDecoder(self) -> Decoder[Event]: ...  # noqa: N802 - the class it stands for


class Codec(UpstreamCodec[ServerSentEvent], Protocol):
    """A dialect callers speak, both directions."""

    def parse_request(self, body: Any, *, model: str | None = None,
                      stream: bool | None = None) -> ir.Request:
        """Validate a caller's body and lift it into the IR. `model` and `stream` are
        what the route says where the dialect puts them in the URL (Gemini); None
        where the body carries them."""
        ...

    def check_translatable(self, body: Any) -> None:
        """Raise a 400 naming the first feature of `body` only the dialect's own
        provider can serve (the body is about to go to another)."""
        ...

    def check_forwardable(self, body: dict[str, Any], *, model: Model,
                          headers: Mapping[str, str]) -> None:
        """Raise a 400 naming the first part of a passthrough body the gateway cannot
        price."""
        ...

    def patch_request(self, body: dict[str, Any], *, model: str, max_tokens: int,
                      stream_usage: bool) -> dict[str, Any]:
        """The caller's body for a same-dialect upstream (a passthrough)."""
        ...

    def strip_reasoning(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body without reasoning settings, for a model that takes none."""
        ...

    def render_response(self, response: ir.Response, *, echo: Echo | None = None
                        ) -> dict[str, Any]:
        """The caller's response body; `echo`: the request fields a stateful dialect's
        response repeats (Responses), None elsewhere."""
        ...

    def StreamEncoder(self, *, model: str, include_usage: bool,  # noqa: N802
                      echo: Echo | None = None) -> Encoder: ...

    def parse_usage(self, usage: Any) -> ir.Usage: ...

    def render_usage(self, usage: ir.Usage) -> dict[str, Any]: ...

    def render_error(self, error: GatewayError) -> dict[str, Any]: ...

    def render_stream_error(self, error: GatewayError) -> list[ServerSentEvent]: ...


if TYPE_CHECKING:  # every dialect package is a whole Codec (mypy checks; nothing runs)
    from afk.dialects import anthropic, gemini, openai_chat, openai_responses

    _ANTHROPIC: Codec = anthropic
    _GEMINI: Codec = gemini
    _OPENAI_CHAT: Codec = openai_chat
    _OPENAI_RESPONSES: Codec = openai_responses
