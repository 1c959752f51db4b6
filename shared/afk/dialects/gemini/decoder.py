"""Gemini streams in: upstream `data:` events -> IR stream events, as a state machine."""

from __future__ import annotations

import time
from typing import Any

from afk import ir
from afk.dialects.gemini import search
from afk.dialects.gemini.errors import error_from_body, render_stream_error
from afk.dialects.gemini.parts import parse_signature
from afk.dialects.gemini.responses import (
    output_call_id,
    parse_usage,
    stop_reason,
)
from afk.dialects.jsonwire import dumps, load_event
from afk.errors import GatewayError, UpstreamError
from afk.sse import ServerSentEvent

__all__ = ["StreamDecoder"]


class StreamDecoder:
    """Upstream `data:` events (each a GenerateContentResponse of new parts, with
    running-total usage) -> IR stream events.

    Consecutive text parts extend one text block, consecutive thought parts one
    thinking block; every call and every signature opens a block of its own.
    Gemini streams have no terminator: `finish()` ends the stream if a
    finishReason was seen and reports truncation otherwise.
    """

    final_response: dict[str, Any] | None = None  # the stream carries no response object

    def __init__(self) -> None:
        self._started = False
        self._closed = False
        self._stop: ir.StopReason | None = None
        self._response_id = ""
        self._blocks = 0
        self._open: tuple[str, int] | None = None  # (kind, index) of an extendable block
        self._calls = 0
        self._searches = 0  # queries of groundingMetadata already emitted
        self._citations = 0
        self._text: int | None = None  # the latest text block (citations attach to it)
        self._answer: list[str] = []  # its text so far, in pieces (grounding offsets count its bytes)

    def _block(self, kind: str) -> int:
        """The open block of this kind, or a new one."""
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._blocks += 1
        self._open = (kind, self._blocks - 1)
        return self._blocks - 1

    def _new_block(self) -> int:
        """A block nothing else extends (a call, a signature)."""
        self._open = None
        self._blocks += 1
        return self._blocks - 1

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._closed:
            raise UpstreamError("The upstream sent data after the stream ended.")
        chunk = load_event(event)
        if chunk.get("error"):
            code = (chunk["error"] or {}).get("code") if isinstance(chunk["error"], dict) else 0
            raise error_from_body(chunk, status=code if isinstance(code, int) and code else 502)
        out: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            self._response_id = str(chunk.get("responseId") or "")
            out.append(ir.StreamStart(id=self._response_id,
                                      model=str(chunk.get("modelVersion") or ""),
                                      created=int(time.time())))
        candidates = chunk.get("candidates") or []
        if candidates:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or []:
                out += self._feed_part(part)
            out += self._feed_grounding(candidate.get("groundingMetadata"))
            if candidate.get("finishReason"):
                try:
                    self._stop = stop_reason(candidate["finishReason"],
                                             has_calls=self._calls > 0)
                except UpstreamError as error:
                    if chunk.get("usageMetadata"):  # billed all the same
                        error.usage = parse_usage(chunk["usageMetadata"])
                    raise
        elif (chunk.get("promptFeedback") or {}).get("blockReason"):
            self._stop = "content_filter"
        if chunk.get("usageMetadata"):
            usage = parse_usage(chunk["usageMetadata"])
            usage.web_searches = self._searches
            out.append(ir.UsageUpdate(usage=usage))
        return out

    def _feed_grounding(self, metadata: Any) -> list[ir.StreamEvent]:
        """Searches and citations not seen yet (a later chunk may repeat earlier ones)."""
        calls, citations = search.parse(metadata, self._response_id, "".join(self._answer))
        out: list[ir.StreamEvent] = []
        for call in calls[self._searches:]:
            out.append(ir.WebSearchDone(index=self._new_block(), call=call))
        self._searches = max(self._searches, len(calls))
        if self._text is not None:
            out += [ir.CitationDelta(index=self._text, citation=c)
                    for c in citations[self._citations:]]
            self._citations = max(self._citations, len(citations))
        return out

    def _feed_part(self, part: Any) -> list[ir.StreamEvent]:
        if not isinstance(part, dict):
            raise UpstreamError("The upstream sent a malformed content part.")
        signature, issuer = parse_signature(part.get("thoughtSignature"))
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            index = self._new_block()
            self._calls += 1
            return [ir.ToolCallStart(index=index, name=str(call.get("name") or ""),
                                     id=output_call_id(self._response_id, self._calls - 1,
                                                        call),
                                     signature=signature, provider=issuer),
                    ir.ToolCallDelta(index=index, arguments=dumps(call.get("args") or {}))]
        text = part["text"] if isinstance(part.get("text"), str) else ""
        if part.get("thought") is True:
            return [ir.ThinkingDelta(index=self._block("thinking"), text=text,
                                     signature=signature, provider=issuer)]
        out: list[ir.StreamEvent] = []
        if signature:
            out.append(ir.ThinkingDelta(index=self._new_block(), signature=signature,
                                        provider=issuer))
        if text:
            index = self._block("text")
            if index != self._text:
                self._text, self._answer = index, []
            self._answer.append(text)  # joined when read: `+=` is quadratic
            out.append(ir.TextDelta(index=index, text=text))
        # Other parts (inline images, executable code) have no stream event in the
        # IR; their tokens are still metered through usageMetadata.
        return out

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream: complete only if it said why it stopped."""
        if self._closed:
            raise UpstreamError("The stream was already finished.")
        self._closed = True
        if self._stop is None:
            raise UpstreamError("The upstream stream ended before it was complete.")
        return [ir.StreamEnd(stop_reason=self._stop)]

    @property
    def done(self) -> bool:
        return self._stop is not None

    def passthrough(self, event: ServerSentEvent, *,
                    include_usage: bool) -> ServerSentEvent | None:
        """Every upstream event is relayed as is: Gemini callers always get usage."""
        return event

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        return render_stream_error(error)  # stateless: the same wherever the stream stands
