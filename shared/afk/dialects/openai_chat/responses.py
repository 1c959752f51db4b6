"""Chat Completions responses and usage, both directions."""

from __future__ import annotations

import time
from typing import Any

from afk import ir
from afk.dialects.base import Echo
from afk.dialects.openai_chat.wire import STOP_FROM_WIRE, STOP_TO_WIRE
from afk.errors import UpstreamError

__all__ = ["parse_response", "parse_usage", "render_response", "render_usage"]


def parse_usage(usage: dict[str, Any] | None) -> ir.Usage:
    usage = usage or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return ir.Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def render_usage(usage: ir.Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def parse_response(body: dict[str, Any]) -> ir.Response:
    choices = body.get("choices") or []
    if not choices:
        raise UpstreamError("The upstream answer has no choices.")
    choice = choices[0]
    message = choice.get("message") or {}
    blocks: list[ir.Block] = []
    if message.get("reasoning_content"):
        blocks.append(ir.Thinking(text=message["reasoning_content"]))
    if message.get("content"):
        blocks.append(ir.Text(text=message["content"]))
    if message.get("refusal"):
        blocks.append(ir.Refusal(text=message["refusal"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(ir.ToolCall(id=call.get("id") or "", name=function.get("name") or "",
                                  arguments=function.get("arguments") or ""))
    return ir.Response(
        id=body.get("id") or "", model=body.get("model") or "",
        created=int(body.get("created") or time.time()), content=blocks,
        stop_reason=STOP_FROM_WIRE.get(choice.get("finish_reason") or "stop", "stop"),
        usage=parse_usage(body.get("usage")),
    )


def render_annotation(citation: ir.Citation, *, offset: int, length: int) -> dict[str, Any]:
    """A url_citation (Chat's nested shape) for a citation of a text block that starts
    at `offset` of the message content; without offsets it covers the whole block."""
    start = citation.start if citation.start is not None else 0
    end = citation.end if citation.end is not None else length
    return {"type": "url_citation", "url_citation": {
        "start_index": offset + start, "end_index": offset + end, "url": citation.url,
        "title": citation.title or citation.url}}


def render_response(response: ir.Response, *, echo: Echo | None = None) -> dict[str, Any]:
    texts = [b for b in response.content if isinstance(b, ir.Text)]
    text = "".join(b.text for b in texts)
    refusal = "".join(b.text for b in response.content if isinstance(b, ir.Refusal))
    calls = [b for b in response.content if isinstance(b, ir.ToolCall)]
    annotations, offset = [], 0
    for block in texts:
        annotations += [render_annotation(c, offset=offset, length=len(block.text))
                        for c in block.citations]
        offset += len(block.text)
    message: dict[str, Any] = {"role": "assistant", "content": text or None,
                               "refusal": refusal or None, "annotations": annotations}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name,
                                                          "arguments": c.arguments}}
            for c in calls]
    return {
        "id": response.id, "object": "chat.completion", "created": response.created,
        "model": response.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": STOP_TO_WIRE[response.stop_reason]}],
        "usage": render_usage(response.usage),
    }
