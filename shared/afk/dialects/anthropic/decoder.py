"""Anthropic Messages streams (PROTOCOLS §3.3): the decoder (upstream events -> IR
events) and the encoder (IR events -> the caller's events), as state machines.

IR block indices equal Anthropic's `index` on the way in; on the way out the
encoder numbers wire blocks itself, since it may add blocks (a signature
carrier) and must open and close them in order.
"""

from __future__ import annotations

import json
import time
from typing import Any

from afk import ir
from afk.dialects.anthropic import search
from afk.dialects.anthropic.messages import PROVIDER, dumps
from afk.dialects.anthropic.responses import (
    STOP_FROM_WIRE,
    STOP_TO_WIRE,
    error_from_body,
    parse_usage,
    render_usage,
    wrap,
)
from afk.errors import UpstreamError
from afk.sse import ServerSentEvent


def _load(event: ServerSentEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data)
    except ValueError:
        raise UpstreamError("The upstream sent a malformed stream event.") from None
    if not isinstance(data, dict):
        raise UpstreamError("The upstream sent a malformed stream event.")
    return data


# ================================================================ decoder
class StreamDecoder:
    """Upstream Messages events -> IR stream events.

    `message_delta` usage is cumulative and may omit fields: the decoder keeps
    the wire usage seen so far, overwrites what each event carries, and emits
    the whole of it (UsageUpdate replaces, it never adds).
    """

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._stop: ir.StopReason | None = None
        self._usage: dict[str, Any] = {}
        self._kinds: dict[int, str] = {}  # wire block index -> block type
        self._queries: dict[int, str] = {}  # server_tool_use index -> its input JSON so far
        self._asked: dict[str, str] = {}  # server_tool_use id -> its query
        self._uses: dict[int, str] = {}  # server_tool_use index -> its id
        # Anthropic streams never carry a usage-only event a caller did not ask for.

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._done:
            raise UpstreamError("The upstream sent data after message_stop.")
        data = _load(event)
        kind = data.get("type") or event.event
        if kind == "ping":
            return []
        if kind == "error":
            raise error_from_body(data, status=_status_of(data))
        if kind == "message_start":
            return self._message_start(data)
        if not self._started:
            raise UpstreamError(f"The upstream sent {kind!r} before message_start.")
        match kind:
            case "content_block_start":
                return self._block_start(data)
            case "content_block_delta":
                return self._block_delta(data)
            case "message_delta":
                return self._message_delta(data)
            case "message_stop":
                self._done = True
                return [ir.StreamEnd(stop_reason=self._stop or "stop")]
            case "content_block_stop":
                return self._block_stop(data)
        return []  # event types newer than this code

    def _block_stop(self, data: dict[str, Any]) -> list[ir.StreamEvent]:
        index = data.get("index")
        if isinstance(index, int) and index in self._uses:
            try:
                query = json.loads(self._queries.get(index) or "{}").get("query")
            except (ValueError, AttributeError):
                query = None
            self._asked[self._uses[index]] = str(query or "")
        return []

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream. Without message_stop the answer is truncated
        (the SDKs would not notice; the gateway must)."""
        if not self._done:
            raise UpstreamError("The upstream stream ended before it was complete.")
        return []

    def _message_start(self, data: dict[str, Any]) -> list[ir.StreamEvent]:
        if self._started:
            raise UpstreamError("The upstream sent a second message_start.")
        self._started = True
        message = data.get("message") or {}
        self._usage = dict(message.get("usage") or {})
        return [ir.StreamStart(id=message.get("id") or "", model=message.get("model") or "",
                               created=int(time.time())),
                ir.UsageUpdate(usage=parse_usage(self._usage))]

    def _block_start(self, data: dict[str, Any]) -> list[ir.StreamEvent]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise UpstreamError("The upstream sent a malformed content_block_start.")
        self._kinds[index] = kind = str(block.get("type"))
        if kind == "text" and block.get("text"):
            return [ir.TextDelta(index=index, text=block["text"])]
        if kind == "thinking" and (block.get("thinking") or block.get("signature")):
            return [ir.ThinkingDelta(index=index, text=block.get("thinking") or "",
                                     signature=block.get("signature") or None,
                                     provider=PROVIDER)]
        if kind == "server_tool_use":
            self._uses[index] = block.get("id") or ""
            self._queries[index] = dumps(block["input"]) if block.get("input") else ""
            return []
        if kind == "web_search_tool_result":
            return [ir.WebSearchDone(index=index, call=search.parse_result(block, self._asked))]
        if kind == "redacted_thinking":
            return [ir.ThinkingDelta(index=index, signature=block.get("data") or "",
                                     provider=PROVIDER, redacted=True)]
        if kind == "tool_use":
            out: list[ir.StreamEvent] = [ir.ToolCallStart(
                index=index, id=block.get("id") or "", name=block.get("name") or "")]
            if block.get("input"):  # normally a {} placeholder; the deltas carry the input
                out.append(ir.ToolCallDelta(index=index, arguments=dumps(block["input"])))
            return out
        return []  # server-tool blocks: relayed by a passthrough, not modelled

    def _block_delta(self, data: dict[str, Any]) -> list[ir.StreamEvent]:
        index, delta = data.get("index"), data.get("delta") or {}
        if index not in self._kinds:
            raise UpstreamError("The upstream sent a delta for a block it never started.")
        assert isinstance(index, int)
        match delta.get("type"):
            case "text_delta" if delta.get("text"):
                return [ir.TextDelta(index=index, text=delta["text"])]
            case "thinking_delta" if delta.get("thinking"):
                return [ir.ThinkingDelta(index=index, text=delta["thinking"])]
            case "signature_delta" if delta.get("signature"):
                return [ir.ThinkingDelta(index=index, signature=delta["signature"],
                                         provider=PROVIDER)]
            case "input_json_delta" if delta.get("partial_json") and \
                    self._kinds[index] == "tool_use":
                return [ir.ToolCallDelta(index=index, arguments=delta["partial_json"])]
            case "input_json_delta" if index in self._uses:
                self._queries[index] += delta.get("partial_json") or ""
            case "citations_delta" if isinstance(delta.get("citation"), dict):
                citations = search.parse_citations({"citations": [delta["citation"]]})
                return [ir.CitationDelta(index=index, citation=c) for c in citations]
        return []

    def _message_delta(self, data: dict[str, Any]) -> list[ir.StreamEvent]:
        reason = (data.get("delta") or {}).get("stop_reason")
        if reason:
            self._stop = STOP_FROM_WIRE.get(reason, "stop")
        usage = data.get("usage") or {}
        self._usage.update({k: v for k, v in usage.items() if v is not None})
        return [ir.UsageUpdate(usage=parse_usage(self._usage))] if usage else []


def _status_of(body: dict[str, Any]) -> int:
    """The HTTP status an in-stream error stands for (its own status was 200)."""
    detail = body.get("error")
    kind = detail.get("type") if isinstance(detail, dict) else None
    return _STATUS_BY_ERROR_TYPE.get(kind or "", 502)


_STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


# ================================================================ encoder
class StreamEncoder:
    """IR stream events -> Messages events for the caller, each with its `event:` line
    (the anthropic SDK drops events without one).

    Usage timing: OpenAI and Gemini upstreams report usage late, so
    `message_start` is held back until the first content (or the end) and
    carries whatever usage is known by then, zeros if none; `message_delta`
    always carries the final cumulative numbers, input side included, which
    the SDK lets overwrite the start's.
    """

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self._model = model  # include_usage is moot: Anthropic streams always report usage
        self._start: ir.StreamStart | None = None
        self._sent_start = False
        self._finished = False
        self._usage: ir.Usage | None = None
        self._wire: dict[int, int] = {}  # IR block index -> wire block index
        self._open: int | None = None  # wire index of the block being streamed
        self._blocks = 0

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        if isinstance(event, ir.StreamStart):
            if self._start is not None:
                raise ValueError("a second stream start")
            self._start = event
            return []
        if self._start is None:
            raise ValueError(f"{event.type} event before the stream start")
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return []
        return [*self._message_start(), *self._content(event)]

    def _content(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        match event:
            case ir.TextDelta(index=index, text=text) | ir.RefusalDelta(index=index, text=text):
                if not text:
                    return []
                out = self._enter(index, {"type": "text", "text": ""})
                return [*out, self._delta(index, {"type": "text_delta", "text": text})]
            case ir.ThinkingDelta(redacted=True, index=index, signature=sig, provider=provider):
                if index in self._wire:
                    return []  # redacted data cannot grow once its block is sent
                return self._enter(index, {"type": "redacted_thinking",
                                           "data": wrap(provider, sig or "")})
            case ir.ThinkingDelta(index=index, text=text, signature=sig, provider=provider):
                out = self._enter(index, {"type": "thinking", "thinking": "", "signature": ""})
                if text:
                    out.append(self._delta(index, {"type": "thinking_delta", "thinking": text}))
                if sig:
                    out.append(self._delta(index, {"type": "signature_delta",
                                                   "signature": wrap(provider, sig)}))
                return out
            case ir.ToolCallStart(index=index, id=call_id, name=name, signature=sig,
                                  provider=provider):
                out = self._signature_carrier(provider, sig) if sig else []
                return out + self._enter(index, {"type": "tool_use", "id": call_id,
                                                 "name": name, "input": {}})
            case ir.ToolCallDelta(index=index, arguments=arguments):
                # Whole arguments (Gemini) go as one fragment, like any other.
                return [self._delta(index, {"type": "input_json_delta",
                                            "partial_json": arguments})] if arguments else []
            case ir.WebSearchDone(index=index, call=call):
                use = search.render_use(call)
                out = self._open_block({**use, "input": {}})
                out.append(self._event({"type": "content_block_delta", "index": self._open,
                                        "delta": {"type": "input_json_delta",
                                                  "partial_json": dumps(use["input"])}}))
                out += self._enter(index, search.render_result(call))
                return [*out, *self._close()]
            case ir.CitationDelta(index=index, citation=citation):
                out = self._enter(index, {"type": "text", "text": ""})
                return [*out, self._delta(index, {"type": "citations_delta",
                                                  "citation": search.render_citation(citation)})]
            case ir.StreamEnd(stop_reason=reason):
                self._finished = True
                usage = render_usage(self._usage or ir.Usage())
                return [*self._close(),
                        self._event({"type": "message_delta",
                                     "delta": {"stop_reason": STOP_TO_WIRE[reason],
                                               "stop_sequence": None},
                                     "usage": usage}),
                        self._event({"type": "message_stop"})]
        raise TypeError(f"unknown stream event {event!r}")

    @staticmethod
    def _event(data: dict[str, Any]) -> ServerSentEvent:
        return ServerSentEvent(data=dumps(data), event=data["type"])

    def _message_start(self) -> list[ServerSentEvent]:
        if self._sent_start:
            return []
        self._sent_start = True
        assert self._start is not None
        message: dict[str, Any] = {"id": self._start.id, "type": "message", "role": "assistant",
                   "model": self._model, "content": [], "stop_reason": None,
                   "stop_sequence": None, "usage": render_usage(self._usage or ir.Usage())}
        return [self._event({"type": "message_start", "message": message})]

    def _close(self) -> list[ServerSentEvent]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [self._event({"type": "content_block_stop", "index": index})]

    def _open_block(self, block: dict[str, Any]) -> list[ServerSentEvent]:
        out = self._close()
        self._open, self._blocks = self._blocks, self._blocks + 1
        return [*out, self._event({"type": "content_block_start", "index": self._open,
                                   "content_block": block})]

    def _enter(self, index: int, block: dict[str, Any]) -> list[ServerSentEvent]:
        """Make IR block `index` the open wire block, starting it on first sight.

        A block already started is not reopened: its late deltas (interleaved
        parallel tool calls) go to its own index, which the SDK accumulates.
        """
        if index in self._wire:
            return []
        out = self._open_block(block)
        self._wire[index] = self._blocks - 1
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> ServerSentEvent:
        return self._event({"type": "content_block_delta", "index": self._wire[index],
                            "delta": delta})

    def _signature_carrier(self, provider: str | None, signature: str) -> list[ServerSentEvent]:
        """An empty thinking block holding another provider's per-call signature,
        as render_block does for a whole response."""
        out = self._open_block({"type": "thinking", "thinking": "", "signature": ""})
        assert self._open is not None
        out.append(self._event({"type": "content_block_delta", "index": self._open,
                                "delta": {"type": "signature_delta",
                                          "signature": wrap(provider, signature)}}))
        return [*out, *self._close()]
