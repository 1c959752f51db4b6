"""Upstream Responses stream events (PROTOCOLS §2.3) -> IR stream events, as a
state machine; and the passthrough hooks."""

from __future__ import annotations

import json
import time
from typing import Any

from afk import ir
from afk.dialects.jsonwire import dumps, load_event
from afk.dialects.openai_responses import search
from afk.dialects.openai_responses.encoder import render_stream_error
from afk.dialects.openai_responses.errors import error_from_body, failure, status_of_code
from afk.dialects.openai_responses.wire import (
    PROVIDER,
    flat_name,
    parse_usage,
    stop_reason,
)
from afk.errors import GatewayError, UpstreamError
from afk.sse import ServerSentEvent

__all__ = ["StreamDecoder"]

_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


# ================================================================ decoder
class StreamDecoder:
    """Upstream Responses events -> IR stream events.

    IR block indices are given in order of first content: one per message
    content part, per function call, per reasoning item. `final_response` is
    the raw `response` of the terminal event (the pipeline stores its output
    items for passthrough turns).
    """

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._snapshot: dict[str, Any] = {}  # the response of response.created
        self._sequence = -1
        self._blocks: dict[tuple[int, int], int] = {}  # (output_index, part) -> IR index
        self._items: dict[int, dict[str, Any]] = {}  # output_index -> item as added
        self._seen: set[int] = set()  # output indices whose content came as deltas
        self._argued: set[int] = set()  # calls whose arguments / input came as deltas
        self._summary: dict[int, int] = {}  # reasoning output_index -> last summary_index
        self._calls = 0
        self._searches = 0  # hosted web searches (OpenAI bills per call item)
        self.final_response: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self._done

    def passthrough(self, event: ServerSentEvent, *,
                    include_usage: bool) -> ServerSentEvent | None:
        """Every upstream event is relayed as is: Responses streams carry usage only in the terminal event, which the caller always gets."""
        return event

    def _block(self, output_index: int, part: int = 0) -> int:
        return self._blocks.setdefault((output_index, part), len(self._blocks))

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._done:
            raise UpstreamError("The upstream sent data after the response ended.")
        data = load_event(event)
        kind = data.get("type") or event.event
        if isinstance(data.get("sequence_number"), int):
            self._sequence = data["sequence_number"]
        if kind == "error":
            detail = data.get("error") if isinstance(data.get("error"), dict) else data
            raise error_from_body(data, status=status_of_code(detail))
        if kind == "response.created":
            return self._created(data)
        if not self._started:
            raise UpstreamError(f"The upstream sent {kind!r} before response.created.")
        if kind in _TERMINAL:
            return self._terminal(kind, data.get("response") or {})
        index = data.get("output_index")
        if kind == "response.output_item.added":
            return self._added(index, data.get("item") or {})
        if kind == "response.output_item.done":
            return self._item_done(index, data.get("item") or {})
        return self._delta(kind, index, data)

    def _created(self, data: dict[str, Any]) -> list[ir.StreamEvent]:
        if self._started:
            raise UpstreamError("The upstream sent a second response.created.")
        self._started = True
        self._snapshot = response = data.get("response") or {}
        return [ir.StreamStart(id=str(response.get("id") or ""),
                               model=str(response.get("model") or ""),
                               created=int(response.get("created_at") or time.time()))]

    def _added(self, index: Any, item: dict[str, Any]) -> list[ir.StreamEvent]:
        if not isinstance(index, int) or index in self._items:
            raise UpstreamError("The upstream sent a malformed response.output_item.added.")
        self._items[index] = item
        if item.get("type") not in ("function_call", "custom_tool_call"):
            return []
        self._calls += 1
        self._seen.add(index)
        start = ir.ToolCallStart(index=self._block(index), id=str(item.get("call_id") or ""),
                                 name=flat_name(str(item.get("name") or ""),
                                                item.get("namespace")))
        if item["type"] == "custom_tool_call":  # its input goes in as {"input": "..."}
            return [start, ir.ToolCallDelta(index=start.index, arguments='{"input":"')]
        return [start]

    def _delta(self, kind: Any, index: Any, data: dict[str, Any]) -> list[ir.StreamEvent]:
        if kind == "response.output_text.annotation.added" and index in self._items:
            citation = search.parse_annotation(data.get("annotation"))
            block = self._block(index, int(data.get("content_index") or 0))
            return [ir.CitationDelta(index=block, citation=citation)] if citation else []
        if kind not in _DELTAS:
            return []  # *.done, content parts, built-in tool progress, newer events
        if index not in self._items:
            raise UpstreamError(f"The upstream sent {kind!r} for an item it never added.")
        delta = data.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        if kind == "response.reasoning_summary_text.delta":
            return self._thinking(index, delta, data.get("summary_index"))
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            self._seen.add(index)
            block = self._block(index, int(data.get("content_index") or 0))
            if kind == "response.refusal.delta":
                return [ir.RefusalDelta(index=block, text=delta)]
            return [ir.TextDelta(index=block, text=delta)]
        self._argued.add(index)
        if kind == "response.custom_tool_call_input.delta":
            delta = json.dumps(delta, ensure_ascii=False)[1:-1]
        return [ir.ToolCallDelta(index=self._block(index), arguments=delta)]

    def _thinking(self, index: int, delta: str, summary: Any) -> list[ir.StreamEvent]:
        text = delta
        if isinstance(summary, int) and summary != self._summary.setdefault(index, summary):
            text = "\n\n" + delta  # summary parts join like parse_response's
            self._summary[index] = summary
        self._seen.add(index)
        return [ir.ThinkingDelta(index=self._block(index), text=text)]

    def _item_done(self, index: Any, item: dict[str, Any]) -> list[ir.StreamEvent]:
        """Content the deltas did not carry (an upstream that sends whole items),
        the reasoning signature, and the end of a custom call's input."""
        if index not in self._items:
            raise UpstreamError("The upstream finished an output item it never added.")
        kind, out = item.get("type"), list[ir.StreamEvent]()
        if kind == "web_search_call":
            self._searches += 1
            return [ir.WebSearchDone(index=self._block(index), call=search.parse_call(item))]
        if kind == "custom_tool_call":
            if index not in self._argued and item.get("input"):
                whole = json.dumps(str(item["input"]), ensure_ascii=False)[1:-1]
                out.append(ir.ToolCallDelta(index=self._block(index), arguments=whole))
            return [*out, ir.ToolCallDelta(index=self._block(index), arguments='"}')]
        if kind == "function_call" and index not in self._argued and item.get("arguments"):
            out.append(ir.ToolCallDelta(index=self._block(index), arguments=item["arguments"]))
        elif kind == "reasoning":
            if index not in self._seen and item.get("summary"):
                text = "\n\n".join(s.get("text") or "" for s in item["summary"])
                out.append(ir.ThinkingDelta(index=self._block(index), text=text))
            if item.get("encrypted_content"):
                out.append(ir.ThinkingDelta(index=self._block(index),
                                            signature=item["encrypted_content"],
                                            provider=PROVIDER))
        elif kind == "message" and index not in self._seen:
            for j, part in enumerate(item.get("content") or []):
                if part.get("type") == "output_text" and part.get("text"):
                    out.append(ir.TextDelta(index=self._block(index, j), text=part["text"]))
                    out += [ir.CitationDelta(index=self._block(index, j), citation=c)
                            for c in map(search.parse_annotation, part.get("annotations") or [])
                            if c is not None]
                elif part.get("type") == "refusal" and part.get("refusal"):
                    out.append(ir.RefusalDelta(index=self._block(index, j),
                                               text=part["refusal"]))
        return out

    def _terminal(self, kind: str, response: dict[str, Any]) -> list[ir.StreamEvent]:
        self._done = True
        self.final_response = response
        if kind == "response.failed":
            error = response.get("error") or {}
            raise UpstreamError(str(error.get("message") or "The upstream response failed."),
                                code=error.get("code"))
        usage = parse_usage(response.get("usage"))
        usage.web_searches = self._searches
        return [ir.UsageUpdate(usage=usage),
                ir.StreamEnd(stop_reason=stop_reason(response, has_calls=self._calls > 0))]

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream: without a terminal event it is truncated."""
        if not self._done:
            raise UpstreamError("The upstream stream ended before it was complete.")
        return []

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        """`response.failed` continuing the upstream stream relayed so far (a
        passthrough): same response id, next sequence number."""
        if not self._started:
            return render_stream_error(error)
        response = {**self._snapshot, "status": "failed", "error": failure(error)}
        data = {"type": "response.failed", "sequence_number": self._sequence + 1,
                "response": response}
        return [ServerSentEvent(data=dumps(data), event="response.failed")]


_DELTAS = ("response.output_text.delta", "response.refusal.delta",
           "response.function_call_arguments.delta", "response.custom_tool_call_input.delta",
           "response.reasoning_summary_text.delta")
