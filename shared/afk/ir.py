"""The canonical request, response and stream-event types.

Every dialect codec translates its wire format to and from these, so four
codecs serve every pairing. Plain typed data, discriminated by `type`,
keyword-only; a dialect-only feature gets a typed field here, never a
free-form dict.

Token conventions (the providers disagree; the IR does not):
`Usage.input_tokens` includes cached tokens, `Usage.output_tokens` includes
reasoning tokens.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from afk.records import dataclass

Role = Literal["system", "user", "assistant", "tool"]
StopReason = Literal["stop", "length", "tool_calls", "stop_sequence", "content_filter",
                     "refusal", "pause", "error"]


# ---------------------------------------------------------------- content blocks
@dataclass(slots=True, kw_only=True)
class Citation:
    """A web source a span of an answer's text rests on (hosted web search).
    `start` / `end`: character offsets in the text block, where the provider
    says; `cited_text`: the source's words, where it quotes them."""

    url: str
    title: str | None = None
    cited_text: str | None = None
    start: int | None = None
    end: int | None = None


@dataclass(slots=True, kw_only=True)
class Text:
    text: str
    citations: list[Citation] = field(default_factory=list)
    type: Literal["text"] = "text"


@dataclass(slots=True, kw_only=True)
class Image:
    """An image by URL, or inline as base64 `data` with its `media_type`."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    type: Literal["image"] = "image"


# Base64 openings of the image formats every provider takes.
_MAGIC = {"iVBOR": "image/png", "/9j/": "image/jpeg", "R0lG": "image/gif", "UklG": "image/webp"}


def sniff_media_type(data: str) -> str | None:
    """The image type base64 `data` opens with, for an image sent without one."""
    return next((media for prefix, media in _MAGIC.items() if data.startswith(prefix)), None)


@dataclass(slots=True, kw_only=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it
    # Opaque reasoning state riding on the call (Gemini's thoughtSignature).
    signature: str | None = None
    provider: str | None = None
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True, kw_only=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    name: str | None = None
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True, kw_only=True)
class Thinking:
    """Reasoning text; `signature` is opaque state only `provider` can read back."""

    text: str
    signature: str | None = None
    provider: str | None = None
    redacted: bool = False
    type: Literal["thinking"] = "thinking"


@dataclass(slots=True, kw_only=True)
class Refusal:
    text: str
    type: Literal["refusal"] = "refusal"


@dataclass(slots=True, kw_only=True)
class Source:
    url: str
    title: str | None = None


@dataclass(slots=True, kw_only=True)
class WebSearchCall:
    """A search the provider ran for the model (hosted web search), and what it found."""

    id: str
    query: str
    sources: list[Source] = field(default_factory=list)
    type: Literal["web_search_call"] = "web_search_call"


Block = Text | Image | ToolCall | ToolResult | Thinking | Refusal | WebSearchCall


@dataclass(slots=True, kw_only=True)
class Message:
    role: Role
    content: list[Block]
    name: str | None = None


# Opaque signatures are readable only by the provider that issued them. When
# one leaves through another provider's dialect it is wrapped with its issuer's
# name, so that when the caller sends the history back the gateway knows whose
# it is: returned unchanged to that provider, dropped for any other.
_SIGNATURE_PREFIX = "afk1."


def wrap_signature(provider: str, signature: str, *, dialect_provider: str) -> str:
    if provider == dialect_provider:
        return signature
    return f"{_SIGNATURE_PREFIX}{provider}.{signature}"


def unwrap_signature(signature: str, *, dialect_provider: str) -> tuple[str, str]:
    """(issuer, raw signature) of a signature received in a dialect's wire format."""
    if signature.startswith(_SIGNATURE_PREFIX):
        provider, _, raw = signature[len(_SIGNATURE_PREFIX):].partition(".")
        if provider and raw:
            return provider, raw
    return dialect_provider, signature


# ---------------------------------------------------------------- request
@dataclass(slots=True, kw_only=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(slots=True, kw_only=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None  # when mode == "tool"


@dataclass(slots=True, kw_only=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


DEFAULT_MAX_SEARCHES = 5  # hosted searches per call where the caller set no limit


@dataclass(slots=True, kw_only=True)
class WebSearch:
    """The provider's hosted web search, offered to the model (every dialect's
    spelling: OpenAI `web_search`, Anthropic `web_search_*`, Gemini `google_search`).
    `max_uses`: the most searches one call may run (the gateway sets one where
    the caller did not, so the hold can bound the fees)."""

    max_uses: int | None = None
    allowed_domains: list[str] = field(default_factory=list)
    blocked_domains: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Request:
    model: str
    messages: list[Message]
    max_output_tokens: int | None = None
    stream: bool = False
    # The caller asked for usage in the stream (OpenAI `include_usage`);
    # dialects that always report usage ignore it.
    stream_usage: bool = False
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    reasoning_effort: str | None = None  # none | minimal | low | medium | high | xhigh | max
    thinking_budget: int | None = None  # tokens (Anthropic budget_tokens, Gemini thinkingBudget)
    user: str | None = None
    metadata: dict[str, str] | None = None
    web_search: WebSearch | None = None
    # An upper bound of the input tokens the provider can bill for the body the
    # gateway forwards (tools, media and all), set before the hold is quoted;
    # None: estimated from this request (offline models).
    input_bound: int | None = None


def effort_for_budget(budget: int) -> str:
    """The nearest reasoning effort for a thinking budget in tokens (for targets,
    like OpenAI's, that take an effort rather than a budget)."""
    if budget <= 0:
        return "minimal"
    if budget <= 2048:
        return "low"
    if budget <= 12288:
        return "medium"
    return "high"


# ---------------------------------------------------------------- response
@dataclass(slots=True, kw_only=True)
class Usage:
    """`input_tokens` includes cached reads and cache writes; `output_tokens`
    includes reasoning; `cache_write_1h_tokens` are the part of the cache writes
    held for an hour (priced apart)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0
    web_searches: int = 0  # hosted web searches the provider ran (and bills)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, kw_only=True)
class Response:
    id: str
    model: str
    content: list[Block]
    stop_reason: StopReason
    usage: Usage
    created: int


# ---------------------------------------------------------------- stream events
# `index` is the position of the block in the assistant's content list.
@dataclass(slots=True, kw_only=True)
class StreamStart:
    id: str
    model: str
    created: int
    type: Literal["start"] = "start"


@dataclass(slots=True, kw_only=True)
class TextDelta:
    index: int
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(slots=True, kw_only=True)
class ThinkingDelta:
    index: int
    text: str = ""
    signature: str | None = None
    provider: str | None = None  # who issued `signature`
    redacted: bool = False  # `signature` holds redacted thinking data
    type: Literal["thinking_delta"] = "thinking_delta"


@dataclass(slots=True, kw_only=True)
class RefusalDelta:
    index: int
    text: str
    type: Literal["refusal_delta"] = "refusal_delta"


@dataclass(slots=True, kw_only=True)
class ToolCallStart:
    index: int
    id: str
    name: str
    signature: str | None = None
    provider: str | None = None
    type: Literal["tool_call_start"] = "tool_call_start"


@dataclass(slots=True, kw_only=True)
class ToolCallDelta:
    index: int
    arguments: str
    type: Literal["tool_call_delta"] = "tool_call_delta"


@dataclass(slots=True, kw_only=True)
class UsageUpdate:
    """Usage so far; later updates replace earlier ones (cumulative)."""

    usage: Usage
    type: Literal["usage"] = "usage"


@dataclass(slots=True, kw_only=True)
class WebSearchDone:
    """A hosted search completed (one event: providers report a search whole)."""

    index: int
    call: WebSearchCall
    type: Literal["web_search_done"] = "web_search_done"


@dataclass(slots=True, kw_only=True)
class CitationDelta:
    """A citation for the text block at `index`."""

    index: int
    citation: Citation
    type: Literal["citation_delta"] = "citation_delta"


@dataclass(slots=True, kw_only=True)
class StreamEnd:
    stop_reason: StopReason
    type: Literal["end"] = "end"


StreamEvent = (StreamStart | TextDelta | ThinkingDelta | RefusalDelta | ToolCallStart
               | ToolCallDelta | UsageUpdate | WebSearchDone | CitationDelta | StreamEnd)


def collect(events: list[StreamEvent]) -> Response:
    """Fold a complete event sequence into the Response it describes."""
    start = next(e for e in events if isinstance(e, StreamStart))
    blocks: dict[int, Block] = {}
    usage = Usage()
    stop: StopReason = "error"
    for event in events:
        match event:
            case TextDelta(index=i, text=t):
                block = blocks.setdefault(i, Text(text=""))
                assert isinstance(block, Text)
                block.text += t
            case ThinkingDelta(index=i, text=t, signature=sig, provider=p, redacted=r):
                block = blocks.setdefault(i, Thinking(text=""))
                assert isinstance(block, Thinking)
                block.text += t
                block.redacted = block.redacted or r
                if sig:
                    block.signature = (block.signature or "") + sig if r else sig
                    block.provider = p
            case RefusalDelta(index=i, text=t):
                block = blocks.setdefault(i, Refusal(text=""))
                assert isinstance(block, Refusal)
                block.text += t
            case ToolCallStart(index=i, id=call_id, name=name, signature=sig, provider=p):
                blocks[i] = ToolCall(id=call_id, name=name, arguments="", signature=sig,
                                     provider=p)
            case ToolCallDelta(index=i, arguments=a):
                block = blocks[i]
                assert isinstance(block, ToolCall)
                block.arguments += a
            case WebSearchDone(index=i, call=call):
                blocks[i] = call
            case CitationDelta(index=i, citation=citation):
                block = blocks.setdefault(i, Text(text=""))
                assert isinstance(block, Text)
                block.citations.append(citation)
            case UsageUpdate(usage=u):
                usage = u
            case StreamEnd(stop_reason=r):
                stop = r
    return Response(id=start.id, model=start.model, created=start.created,
                    content=[blocks[i] for i in sorted(blocks)], stop_reason=stop, usage=usage)
