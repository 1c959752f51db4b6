"""Chat Completions streams in: upstream `chat.completion.chunk`s to IR events."""

from __future__ import annotations

import time
from typing import Any

from afk import ir
from afk.dialects.jsonwire import dumps, load_event
from afk.dialects.openai_chat.errors import error_from_body, render_stream_error
from afk.dialects.openai_chat.responses import parse_usage
from afk.dialects.openai_chat.wire import DONE, STOP_FROM_WIRE
from afk.errors import GatewayError, UpstreamError
from afk.sse import ServerSentEvent

__all__ = ["StreamDecoder"]

_NULL_USAGE_LAST = ',"usage":null}'


class StreamDecoder:
    """Upstream `chat.completion.chunk` events -> IR stream events.

    Block indices: the text block and each tool call (by the wire's
    `tool_calls[].index`) get an IR block index in order of first appearance.
    """

    final_response: dict[str, Any] | None = None  # the stream carries no response object

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._stop: ir.StopReason | None = None
        self._text_index: int | None = None
        self._refusal_index: int | None = None
        self._thinking_index: int | None = None
        self._tool_index: dict[int, int] = {}
        self._blocks = 0
        # The last chunk fed, parsed; a passthrough drops its usage (and the
        # usage-only chunk, `choices: []`) when the caller did not ask for usage.
        self.last_chunk: dict[str, Any] | None = None

    def _block(self, current: int | None) -> int:
        if current is not None:
            return current
        self._blocks += 1
        return self._blocks - 1

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._done:
            raise UpstreamError("The upstream sent data after [DONE].")
        self.last_chunk = None
        if event.data == DONE:
            self._done = True
            return [ir.StreamEnd(stop_reason=self._stop or "stop")]
        chunk = load_event(event)
        if chunk.get("error"):
            raise error_from_body(chunk, status=502)
        self.last_chunk = chunk
        out: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(ir.StreamStart(id=chunk.get("id") or "", model=chunk.get("model") or "",
                                      created=int(chunk.get("created") or time.time())))
        choices = chunk.get("choices") or []
        for choice in choices[:1]:
            out += self._feed_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._stop = STOP_FROM_WIRE.get(choice["finish_reason"], "stop")
        if chunk.get("usage"):
            out.append(ir.UsageUpdate(usage=parse_usage(chunk["usage"])))
        return out

    def _feed_delta(self, delta: dict[str, Any]) -> list[ir.StreamEvent]:
        if len(delta) == 1 and "content" in delta:  # a text delta, nearly every chunk
            if not delta["content"]:
                return []
            self._text_index = self._block(self._text_index)
            return [ir.TextDelta(index=self._text_index, text=delta["content"])]
        out: list[ir.StreamEvent] = []
        if delta.get("reasoning_content"):
            self._thinking_index = self._block(self._thinking_index)
            out.append(ir.ThinkingDelta(index=self._thinking_index,
                                        text=delta["reasoning_content"]))
        if delta.get("content"):
            self._text_index = self._block(self._text_index)
            out.append(ir.TextDelta(index=self._text_index, text=delta["content"]))
        if delta.get("refusal"):
            self._refusal_index = self._block(self._refusal_index)
            out.append(ir.RefusalDelta(index=self._refusal_index, text=delta["refusal"]))
        for call in delta.get("tool_calls") or []:
            wire_index = call.get("index", 0)
            function = call.get("function") or {}
            if wire_index not in self._tool_index:
                self._tool_index[wire_index] = self._block(None)
                out.append(ir.ToolCallStart(index=self._tool_index[wire_index],
                                            id=call.get("id") or "",
                                            name=function.get("name") or ""))
            if function.get("arguments"):
                out.append(ir.ToolCallDelta(index=self._tool_index[wire_index],
                                            arguments=function["arguments"]))
        return out

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream. Without `[DONE]` the answer is truncated."""
        if not self._done:
            raise UpstreamError("The upstream stream ended before it was complete.")
        return []

    @property
    def done(self) -> bool:
        return self._done

    def passthrough(self, event: ServerSentEvent, *,
                    include_usage: bool) -> ServerSentEvent | None:
        """The event just fed as the caller gets it, or None to drop it.

        The gateway always asks the upstream for usage (it bills from it). A caller
        who did not ask gets what OpenAI sends such a caller: no usage-only chunk,
        and no `usage` key at all in the other chunks (not `"usage": null`).
        """
        chunk = self.last_chunk
        if include_usage or chunk is None or "usage" not in chunk:
            return event
        if not chunk.get("choices"):
            return None
        if chunk["usage"] is None and next(reversed(chunk)) == "usage" \
                and event.data.endswith(_NULL_USAGE_LAST):
            # `"usage":null` written last, as OpenAI writes it: cut from the text
            # instead of writing the whole chunk again (bench/LEVERS.md).
            return ServerSentEvent(data=event.data[:-len(_NULL_USAGE_LAST)] + "}")
        return ServerSentEvent(data=dumps({k: v for k, v in chunk.items() if k != "usage"}))

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        return render_stream_error(error)  # stateless: the same wherever the stream stands
