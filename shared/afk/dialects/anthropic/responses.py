"""Anthropic Messages answers: stop reasons, usage, response content blocks,
and upstream error bodies as ours."""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.anthropic import search
from afk.dialects.anthropic.messages import PROVIDER, arguments_object, dumps
from afk.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    RequestTooLarge,
    UpstreamError,
)

STOP_FROM_WIRE: dict[str, ir.StopReason] = {
    "end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop_sequence",
    "tool_use": "tool_calls", "refusal": "refusal", "pause_turn": "pause",
    "model_context_window_exceeded": "length",
}
STOP_TO_WIRE: dict[str, str] = {
    "stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use", "content_filter": "refusal", "refusal": "refusal",
    "pause": "pause_turn", "error": "end_turn",
}


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


def wrap(provider: str | None, signature: str) -> str:
    """A signature as it leaves through this dialect (tagged unless Anthropic's own)."""
    return ir.wrap_signature(provider or "unknown", signature, dialect_provider=PROVIDER)


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
                               "input": arguments_object(arguments)}]
    return []


# ================================================================ upstream errors
def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream Anthropic error as ours, keeping its message."""
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or "upstream error")
    else:
        message = str(detail) if detail else "upstream error"
    if status in (400, 422):
        return InvalidRequest(message, status=status)
    if status == 413:
        return RequestTooLarge(message)
    if status == 429:
        return RateLimited(message)
    if status in (503, 529):
        return Overloaded(message)
    return UpstreamError(f"upstream error ({status}): {message}")
