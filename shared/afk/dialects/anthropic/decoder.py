"""Messages streams in (PROTOCOLS §3.3): upstream events to IR events, as a state
machine. IR block indices equal Anthropic's `index`."""

from __future__ import annotations

import json
import time
from typing import Any

from afk import ir
from afk.dialects.anthropic import search
from afk.dialects.anthropic.errors import error_from_body, render_stream_error, stream_error_status
from afk.dialects.anthropic.responses import parse_usage
from afk.dialects.anthropic.wire import PROVIDER, STOP_FROM_WIRE
from afk.dialects.jsonwire import dumps, load_event
from afk.errors import GatewayError, UpstreamError
from afk.sse import ServerSentEvent

__all__ = ["StreamDecoder"]


class StreamDecoder:
    """Upstream Messages events -> IR stream events.

    `message_delta` usage is cumulative and may omit fields: the decoder keeps
    the wire usage seen so far, overwrites what each event carries, and emits
    the whole of it (UsageUpdate replaces, it never adds).
    """

    final_response: dict[str, Any] | None = None  # the stream carries no response object

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

    def passthrough(self, event: ServerSentEvent, *,
                    include_usage: bool) -> ServerSentEvent | None:
        """Every upstream event is relayed as is: Anthropic streams always carry usage."""
        return event

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        return render_stream_error(error)  # stateless: the same wherever the stream stands

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._done:
            raise UpstreamError("The upstream sent data after message_stop.")
        data = load_event(event)
        kind = data.get("type") or event.event
        if kind == "ping":
            return []
        if kind == "error":
            raise error_from_body(data, status=stream_error_status(data))
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
