"""Gemini streams out: IR stream events -> `data:` events for a Gemini caller, as a
state machine (the HTTP layer frames them as SSE, or as the JSON array sent
without `alt=sse`)."""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.base import Echo
from afk.dialects.gemini import search
from afk.dialects.gemini.errors import render_stream_error
from afk.dialects.gemini.parts import render_function_call
from afk.dialects.gemini.responses import (
    STOP_TO_WIRE,
    render_usage,
)
from afk.dialects.gemini.wire import PROVIDER
from afk.dialects.jsonwire import TextTemplate, dumps
from afk.errors import GatewayError
from afk.sse import ServerSentEvent

__all__ = ["StreamEncoder"]


class StreamEncoder:
    """IR stream events -> `data: {GenerateContentResponse}` events for the caller.

    One event per text delta, held back until the next event so that the last
    one carries the finishReason, as Gemini's own last event does. A tool call
    is buffered and sent whole (Gemini callers expect complete args) when its
    block ends; consecutive calls share one event, as Gemini sends them. Every
    event carries the usage known when it is sent, the last one the final usage.
    """

    def __init__(self, *, model: str, include_usage: bool,
                 echo: Echo | None = None) -> None:  # echo: Responses only
        del include_usage  # Gemini always reports usage
        self._model = model
        self._id = ""
        self._usage: ir.Usage | None = None
        self._signature: str | None = None  # a Gemini thought signature for the next part
        self._pending: list[dict[str, Any]] = []  # parts of the event not sent yet
        self._call: ir.ToolCall | None = None  # the call whose arguments are streaming
        self._call_index: int | None = None
        self._finished = False
        # Hosted searches and citations: sent as groundingMetadata with the last event,
        # where Gemini sends it.
        self._searches: list[ir.WebSearchCall] = []
        self._citations: list[ir.Citation] = []
        self._text_event: TextTemplate | None = None  # a text event, once per stream
        self._answer: list[str] = []  # the text sent, in pieces (grounding offsets count its bytes)

    def _part(self, part: dict[str, Any]) -> dict[str, Any]:
        if self._signature and "thoughtSignature" not in part:
            part["thoughtSignature"], self._signature = self._signature, None
        return part

    def _send(self, finish: str | None = None) -> list[ServerSentEvent]:
        parts, self._pending = self._pending, []
        if not parts and finish is None:
            return []
        if finish is None and self._usage is None and len(parts) == 1 \
                and len(parts[0]) == 1 and "text" in parts[0]:
            return [self._text(parts[0]["text"])]  # nearly every event of a translated stream
        return [ServerSentEvent(data=self._render(parts, finish))]

    def _render(self, parts: list[dict[str, Any]], finish: str | None) -> str:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
            if self._searches or self._citations:
                candidate["groundingMetadata"] = search.render(
                    self._searches, self._citations, "".join(self._answer))
        candidate["index"] = 0
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if self._usage is not None:
            chunk["usageMetadata"] = render_usage(self._usage)
        chunk["modelVersion"] = self._model
        chunk["responseId"] = self._id
        return dumps(chunk)

    def _text(self, text: str) -> ServerSentEvent:
        """The event `_send` writes for one text part, no usage and no finish yet: the
        JSON around the text written once per stream, the text alone each time."""
        if self._text_event is None:
            self._text_event = TextTemplate(self._render([{"text": ""}], None), "text")
        return ServerSentEvent(data=self._text_event(text))

    def _close_call(self) -> list[ServerSentEvent]:
        """The streaming call is complete: it joins the pending calls, if any."""
        if self._call is None:
            return []
        part = self._part(render_function_call(self._call))
        self._call = self._call_index = None
        out = [] if all("functionCall" in p for p in self._pending) else self._send()
        self._pending.append(part)
        return out

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        return render_stream_error(error)  # stateless: the same wherever the stream stands

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        match event:
            case ir.StreamStart(id=response_id):
                self._id = response_id
                self._text_event = None
                return []
            case ir.TextDelta(text=text) | ir.RefusalDelta(text=text):
                if not text:
                    return []
                out = self._close_call() + self._send()
                self._pending = [self._part({"text": text})]
                self._answer.append(text)  # joined when read: `+=` is quadratic
                return out
            case ir.ThinkingDelta(signature=signature, provider=provider):
                out = self._close_call()
                if signature and provider == PROVIDER:
                    self._signature = signature
                return out  # thought text never leaks
            case ir.ToolCallStart(index=index, id=call_id, name=name, signature=signature,
                                  provider=provider):
                out = self._close_call()
                if not all("functionCall" in p for p in self._pending):
                    out += self._send()
                self._call = ir.ToolCall(id=call_id, name=name, arguments="",
                                         signature=signature, provider=provider)
                self._call_index = index
                return out
            case ir.ToolCallDelta(index=index, arguments=arguments):
                if self._call is None or index != self._call_index:
                    raise ValueError(f"arguments for tool call block {index} before its start")
                self._call.arguments += arguments
                return []
            case ir.UsageUpdate(usage=usage):
                self._usage = usage
                return []
            case ir.WebSearchDone(call=call):
                self._searches.append(call)
                return []
            case ir.CitationDelta(citation=citation):
                self._citations.append(citation)
                return []
            case ir.StreamEnd(stop_reason=reason):
                out = self._close_call()
                self._finished = True
                if not self._pending or self._signature:
                    self._pending.append(self._part({"text": ""}))
                return out + self._send(STOP_TO_WIRE[reason])
        raise TypeError(f"unknown stream event {event!r}")
