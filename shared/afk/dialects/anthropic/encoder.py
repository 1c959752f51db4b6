"""Messages streams out: IR events to the caller's events, as a state machine.

The encoder numbers wire blocks itself, since it may add blocks (a signature
carrier) and must open and close them in order.
"""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.anthropic import search
from afk.dialects.anthropic.errors import render_stream_error
from afk.dialects.anthropic.responses import render_usage
from afk.dialects.anthropic.wire import STOP_TO_WIRE, wrap
from afk.dialects.base import Echo
from afk.dialects.jsonwire import dumps
from afk.errors import GatewayError
from afk.sse import ServerSentEvent

__all__ = ["StreamEncoder"]


class StreamEncoder:
    """IR stream events -> Messages events for the caller, each with its `event:` line
    (the anthropic SDK drops events without one).

    Usage timing: OpenAI and Gemini upstreams report usage late, so
    `message_start` is held back until the first content (or the end) and
    carries whatever usage is known by then, zeros if none; `message_delta`
    always carries the final cumulative numbers, input side included, which
    the SDK lets overwrite the start's.
    """

    def __init__(self, *, model: str, include_usage: bool,
                 echo: Echo | None = None) -> None:  # echo: Responses only
        self._model = model  # include_usage is moot: Anthropic streams always report usage
        self._start: ir.StreamStart | None = None
        self._sent_start = False
        self._finished = False
        self._usage: ir.Usage | None = None
        self._wire: dict[int, int] = {}  # IR block index -> wire block index
        self._open: int | None = None  # wire index of the block being streamed
        self._blocks = 0

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        return render_stream_error(error)  # stateless: the same wherever the stream stands

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        if type(event) is ir.TextDelta and event.index in self._wire:
            # Nearly every event: more text for a block already on the wire.
            return [text_delta(self._wire[event.index], event.text)] if event.text else []
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


def text_delta(index: int, text: str) -> ServerSentEvent:
    """The `content_block_delta` of `text` for wire block `index`, as `_delta` writes
    it, without building its dict (~1.7 of ~3 µs an event, bench/LEVERS.md)."""
    return ServerSentEvent(
        data=f'{{"type":"content_block_delta","index":{index},'
             f'"delta":{{"type":"text_delta","text":{dumps(text)}}}}}',
        event="content_block_delta")
