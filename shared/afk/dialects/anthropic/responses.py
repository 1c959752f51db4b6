"""Messages responses, both ways: content blocks, usage, the response body."""

from __future__ import annotations

import time
from typing import Any

from afk import ir
from afk.dialects.anthropic import search
from afk.dialects.anthropic.wire import (
    PROVIDER,
    STOP_FROM_WIRE,
    STOP_TO_WIRE,
    tool_input,
    wrap,
)
from afk.dialects.base import Echo
from afk.dialects.jsonwire import dumps

__all__ = ["parse_response", "parse_usage", "render_response", "render_usage"]


def parse_usage(usage: dict[str, Any] | None) -> ir.Usage:
    """Anthropic's input_tokens excludes the cache; the IR's includes it. One-hour
    cache writes (`cache_creation.ephemeral_1h_input_tokens`) are priced apart."""
    usage = usage or {}
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    details = usage.get("output_tokens_details") or {}
    by_ttl = usage["cache_creation"] if isinstance(usage.get("cache_creation"), dict) else {}
    return ir.Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + cache_write + cache_read,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=int(by_ttl.get("ephemeral_1h_input_tokens") or 0),
        reasoning_tokens=int(details.get("thinking_tokens") or 0),
        web_searches=search.parse_searches(usage),
    )


def render_usage(usage: ir.Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": max(usage.input_tokens - usage.cached_input_tokens
                            - usage.cache_write_tokens, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
    }
    if usage.cache_write_1h_tokens:
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens - usage.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens}
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    if usage.web_searches:
        out["server_tool_use"] = search.render_searches(usage.web_searches)
    return out


def parse_block(block: dict[str, Any], asked: dict[str, str] | None = None) -> ir.Block | None:
    """One upstream content block; `asked` pairs search results with their queries."""
    match block.get("type"):
        case "text":
            return ir.Text(text=block.get("text") or "", citations=search.parse_citations(block))
        case "web_search_tool_result":
            return search.parse_result(block, asked or {})
        case "thinking":
            return ir.Thinking(text=block.get("thinking") or "",
                               signature=block.get("signature") or None, provider=PROVIDER)
        case "redacted_thinking":
            return ir.Thinking(text="", signature=block.get("data") or "", provider=PROVIDER,
                               redacted=True)
        case "tool_use":
            return ir.ToolCall(id=block.get("id") or "", name=block.get("name") or "",
                               arguments=dumps(block.get("input") or {}))
    return None  # other server-tool blocks: relayed by a passthrough, not modelled


def render_block(block: ir.Block) -> list[dict[str, Any]]:
    """One IR output block as the caller's content blocks (zero, one or two)."""
    match block:
        case ir.Text(text=text, citations=citations) if citations:
            return [{"type": "text", "text": text,
                     "citations": [search.render_citation(c) for c in citations]}]
        case ir.Text(text=text) | ir.Refusal(text=text):
            return [{"type": "text", "text": text}] if text else []
        case ir.WebSearchCall() as call:
            return [search.render_use(call), search.render_result(call)]
        case ir.Thinking(redacted=True, signature=str(signature), provider=provider):
            return [{"type": "redacted_thinking", "data": wrap(provider, signature)}]
        case ir.Thinking(text=text, signature=signature, provider=provider):
            if not text and not signature:
                return []
            return [{"type": "thinking", "thinking": text,
                     "signature": wrap(provider, signature) if signature else ""}]
        case ir.ToolCall(id=call_id, name=name, arguments=arguments, signature=signature,
                         provider=provider):
            # Another provider's per-call signature (Gemini's thoughtSignature) rides
            # in an empty thinking block just before the call, where Anthropic
            # clients keep thinking; parse_request reattaches it to the call.
            carrier = render_block(ir.Thinking(text="", signature=signature,
                                               provider=provider)) if signature else []
            return [*carrier, {"type": "tool_use", "id": call_id, "name": name,
                               "input": tool_input(arguments)}]
    return []


def parse_response(body: dict[str, Any]) -> ir.Response:
    content = body.get("content") or []
    asked = search.queries(content)
    blocks = [parse_block(b, asked) for b in content if isinstance(b, dict)]
    return ir.Response(
        id=body.get("id") or "", model=body.get("model") or "", created=int(time.time()),
        content=[b for b in blocks if b is not None],
        stop_reason=STOP_FROM_WIRE.get(body.get("stop_reason") or "end_turn", "stop"),
        usage=parse_usage(body.get("usage")),
    )


def render_response(response: ir.Response, *, echo: Echo | None = None) -> dict[str, Any]:
    return {
        "id": response.id, "type": "message", "role": "assistant", "model": response.model,
        "content": [out for block in response.content for out in render_block(block)],
        "stop_reason": STOP_TO_WIRE[response.stop_reason], "stop_sequence": None,
        "usage": render_usage(response.usage),
    }
