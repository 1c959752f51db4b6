"""Chat Completions streams out: IR events to the caller's `chat.completion.chunk`s."""

from __future__ import annotations

import json
from typing import Any

from afk import ir
from afk.dialects.base import Echo
from afk.dialects.jsonwire import TextTemplate, dumps
from afk.dialects.openai_chat.errors import render_stream_error
from afk.dialects.openai_chat.responses import render_annotation, render_usage
from afk.dialects.openai_chat.wire import DONE, STOP_TO_WIRE
from afk.errors import GatewayError
from afk.sse import ServerSentEvent

__all__ = ["StreamEncoder"]


class StreamEncoder:
    """IR stream events -> `chat.completion.chunk` events for the caller."""

    def __init__(self, *, model: str, include_usage: bool,
                 echo: Echo | None = None) -> None:  # echo: Responses only
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = 0
        self._tool_ordinal: dict[int, int] = {}
        self._usage: ir.Usage | None = None
        self._finished = False
        self._text_offsets: dict[int, int] = {}  # IR text block -> its offset in the content
        self._content_length = 0
        self._text_chunk: TextTemplate | None = None  # a text chunk, once per stream

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None) -> ServerSentEvent:
        chunk: dict[str, Any] = {
            "id": self._id, "object": "chat.completion.chunk", "created": self._created,
            "model": self._model,
            "choices": [] if delta is None else [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return ServerSentEvent(data=dumps(chunk))

    def _text(self, text: str) -> ServerSentEvent:
        """`_chunk({"content": text})`, nearly every chunk: the JSON around the text is
        written once per stream (the rest of the chunk does not change), the text
        alone each time (bench/LEVERS.md)."""
        if self._text_chunk is None:
            self._text_chunk = TextTemplate(self._chunk({"content": ""}).data, "content")
        return ServerSentEvent(data=self._text_chunk(text))

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        return render_stream_error(error)  # stateless: the same wherever the stream stands

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        match event:
            case ir.StreamStart(id=response_id, created=created):
                self._id, self._created = response_id, created
                self._text_chunk = None
                return [self._chunk({"role": "assistant", "content": ""})]
            case ir.TextDelta(index=index, text=text):
                self._text_offsets.setdefault(index, self._content_length)
                self._content_length += len(text)
                return [self._text(text)]
            case ir.CitationDelta(index=index, citation=citation):
                # As OpenAI's search models stream them: a delta of annotations.
                offset = self._text_offsets.get(index, self._content_length)
                return [self._chunk({"annotations": [render_annotation(
                    citation, offset=offset, length=self._content_length - offset)]})]
            case ir.WebSearchDone():
                return []  # Chat shows only the answer and its citations
            case ir.RefusalDelta(text=text):
                return [self._chunk({"refusal": text})]
            case ir.ThinkingDelta():
                return []  # reasoning text never leaks into visible content
            case ir.ToolCallStart(index=index, id=call_id, name=name):
                ordinal = self._tool_ordinal.setdefault(index, len(self._tool_ordinal))
                return [self._chunk({"tool_calls": [{
                    "index": ordinal, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]})]
            case ir.ToolCallDelta(index=index, arguments=arguments):
                return [self._chunk({"tool_calls": [{
                    "index": self._tool_ordinal[index], "function": {"arguments": arguments}}]})]
            case ir.UsageUpdate(usage=usage):
                self._usage = usage
                return []
            case ir.StreamEnd(stop_reason=reason):
                self._finished = True
                out = [self._chunk({}, STOP_TO_WIRE[reason])]
                if self._include_usage:
                    usage_chunk = json.loads(self._chunk(None).data)
                    usage_chunk["usage"] = render_usage(self._usage or ir.Usage())
                    out.append(ServerSentEvent(data=dumps(usage_chunk)))
                out.append(ServerSentEvent(data=DONE))
                return out
        raise TypeError(f"unknown stream event {event!r}")
