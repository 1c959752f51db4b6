"""Converse answers as IR: the buffered response, and the ConverseStream events
(https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html):
messageStart, contentBlockStart (tool use only), contentBlockDelta (text, tool input,
reasoning), contentBlockStop, messageStop (the stop reason), then metadata (usage).
The usage comes after messageStop, so the IR stream ends only at metadata."""

from __future__ import annotations

import json
from typing import Any

from afk import ir
from afk.dialects.jsonwire import dumps
from afk.errors import GatewayError, UpstreamError
from afk.providers.bedrock.wire import (
    PROVIDER,
    exception_error,
    new_response_id,
    now,
    parse_usage,
    stop_reason,
)
from afk.providers.eventstream import Message
from afk.sse import ServerSentEvent


def parse_response(body: Any) -> ir.Response:
    if not isinstance(body, dict):
        raise UpstreamError("The bedrock upstream answered with an unexpected body.")
    message = (body.get("output") or {}).get("message") or {}
    content: list[ir.Block] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            content.append(ir.Text(text=block["text"]))
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            given = use.get("input")
            content.append(ir.ToolCall(id=str(use.get("toolUseId") or ""),
                                       name=str(use.get("name") or ""),
                                       arguments=dumps({} if given is None else given)))
        elif isinstance(block.get("reasoningContent"), dict):
            content.append(_thinking(block["reasoningContent"]))
    return ir.Response(id=new_response_id(), model="", content=content,
                       stop_reason=stop_reason(body.get("stopReason")),
                       usage=parse_usage(body.get("usage")), created=now())


def _thinking(reasoning: dict[str, Any]) -> ir.Thinking:
    if "redactedContent" in reasoning:
        return ir.Thinking(text="", signature=str(reasoning["redactedContent"]),
                           provider=PROVIDER, redacted=True)
    text = reasoning.get("reasoningText") or {}
    return ir.Thinking(text=str(text.get("text") or ""), signature=text.get("signature"),
                       provider=PROVIDER)


class StreamDecoder:
    """ConverseStream messages -> IR stream events."""

    def __init__(self) -> None:
        self._started = False
        self._stop: ir.StopReason | None = None  # messageStop seen
        self._done = False  # metadata seen after messageStop: the answer is complete

    def feed(self, message: Message) -> list[ir.StreamEvent]:
        if self._done:
            raise UpstreamError("The bedrock upstream sent data after the stream's metadata.")
        kind = message.headers.get(":message-type", "event")
        data = _payload(message)
        if kind == "exception":
            raise exception_error(str(message.headers.get(":exception-type") or ""), data)
        if kind == "error":
            raise exception_error(str(message.headers.get(":error-code") or ""),
                                  {"message": message.headers.get(":error-message")})
        event = message.headers.get(":event-type")
        if event == "messageStart":
            if self._started:
                raise UpstreamError("The bedrock upstream sent a second messageStart.")
            self._started = True
            return [ir.StreamStart(id=new_response_id(), model="", created=now())]
        if not self._started:
            raise UpstreamError(f"The bedrock upstream sent {event!r} before messageStart.")
        match event:
            case "contentBlockStart":
                return self._block_start(data)
            case "contentBlockDelta":
                return self._block_delta(data)
            case "messageStop":
                self._stop = stop_reason(data.get("stopReason"))
                return []
            case "metadata":
                if self._stop is None:
                    raise UpstreamError("The bedrock upstream sent metadata before "
                                        "messageStop.")
                self._done = True
                return [ir.UsageUpdate(usage=parse_usage(data.get("usage"))),
                        ir.StreamEnd(stop_reason=self._stop)]
        return []  # contentBlockStop, and event types newer than this code

    final_response: dict[str, Any] | None = None  # ConverseStream carries no response object

    @property
    def done(self) -> bool:
        return self._done

    def passthrough(self, message: Message, *, include_usage: bool) -> None:
        """No caller speaks Converse: nothing is ever relayed as is."""
        return None

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        """Never relayed (see `passthrough`), so never failed in the caller's events."""
        return []

    def finish(self) -> list[ir.StreamEvent]:
        if not self._done:
            raise UpstreamError("The bedrock upstream stream ended before it was complete.")
        return []

    @staticmethod
    def _block_start(data: dict[str, Any]) -> list[ir.StreamEvent]:
        index, start = data.get("contentBlockIndex"), data.get("start") or {}
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(index, int):
            raise UpstreamError("The bedrock upstream sent a malformed contentBlockStart.")
        if not isinstance(use, dict):
            return []
        return [ir.ToolCallStart(index=index, id=str(use.get("toolUseId") or ""),
                                 name=str(use.get("name") or ""))]

    @staticmethod
    def _block_delta(data: dict[str, Any]) -> list[ir.StreamEvent]:
        index, delta = data.get("contentBlockIndex"), data.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            raise UpstreamError("The bedrock upstream sent a malformed contentBlockDelta.")
        if isinstance(delta.get("text"), str):
            return [ir.TextDelta(index=index, text=delta["text"])]
        if isinstance(delta.get("toolUse"), dict):
            return [ir.ToolCallDelta(index=index,
                                     arguments=str(delta["toolUse"].get("input") or ""))]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if "redactedContent" in reasoning:
                return [ir.ThinkingDelta(index=index, signature=str(reasoning["redactedContent"]),
                                         provider=PROVIDER, redacted=True)]
            return [ir.ThinkingDelta(index=index, text=str(reasoning.get("text") or ""),
                                     signature=reasoning.get("signature"), provider=PROVIDER)]
        return []


def _payload(message: Message) -> dict[str, Any]:
    if not message.payload:
        return {}
    try:
        data = json.loads(message.payload)
    except ValueError:
        raise UpstreamError("The bedrock upstream sent an event that is not JSON.") from None
    return data if isinstance(data, dict) else {}
