"""GenerateContentResponse bodies: upstream -> IR and IR -> caller, with usage,
finish reasons and the ids given to calls that came without one."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from afk import ir
from afk.dialects.base import Echo
from afk.dialects.gemini import search
from afk.dialects.gemini.parts import (
    parse_part,
    render_function_call,
    render_image,
)
from afk.dialects.gemini.wire import PROVIDER
from afk.dialects.jsonwire import dumps
from afk.errors import UpstreamError

__all__ = ["parse_response", "parse_usage", "render_response", "render_usage"]

_FILTERED = frozenset({"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
                       "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})
STOP_TO_WIRE: dict[str, str] = {
    "stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "stop_sequence": "STOP",
    "content_filter": "SAFETY", "refusal": "SAFETY", "pause": "STOP", "error": "OTHER",
}


# ================================================================ usage and finish reasons
def parse_usage(usage: Any) -> ir.Usage:
    """`candidatesTokenCount` excludes thoughts; the IR's output includes them.
    Tool-use prompt tokens are billed as input, so they count as input here."""
    usage = usage if isinstance(usage, dict) else {}
    thoughts = int(usage.get("thoughtsTokenCount") or 0)
    return ir.Usage(
        input_tokens=int(usage.get("promptTokenCount") or 0)
        + int(usage.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(usage.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=int(usage.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def render_usage(usage: ir.Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(0, usage.output_tokens - usage.reasoning_tokens),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_input_tokens:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def stop_reason(reason: Any, *, has_calls: bool) -> ir.StopReason:
    if reason == "MALFORMED_FUNCTION_CALL":
        raise UpstreamError("The model produced a malformed function call "
                            "(MALFORMED_FUNCTION_CALL).")
    if reason in (None, "STOP"):
        return "tool_calls" if has_calls else "stop"  # Gemini ends calls with STOP
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in _FILTERED else "error"


def output_call_id(response_id: str, ordinal: int, call: dict[str, Any]) -> str:
    """The call's own id, or one derived from where it sits in which answer."""
    own = call.get("id")
    if isinstance(own, str) and own:
        return own
    seed = f"{response_id}\0{ordinal}\0{call.get('name')}\0{dumps(call.get('args') or {})}"
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


# ================================================================ upstream -> IR
def parse_response(body: Any) -> ir.Response:
    """An upstream GenerateContentResponse as IR. Parts the IR cannot carry (the
    executableCode of a codeExecution tool, ...) are left out: a passthrough
    relays them, and their tokens are metered through usageMetadata."""
    if not isinstance(body, dict):
        raise UpstreamError("The upstream answer is not a JSON object.")
    response_id = str(body.get("responseId") or "")
    candidates = body.get("candidates") or []
    blocks: list[ir.Block] = []
    searches = 0
    if candidates:
        candidate = candidates[0]
        ordinal = iter(range(1 << 30))
        for j, part in enumerate((candidate.get("content") or {}).get("parts") or []):
            blocks += parse_part(part, f"candidates[0].content.parts[{j}]",
                                 lambda call: output_call_id(response_id, next(ordinal), call),
                                 [])
        text = next((b for b in blocks if isinstance(b, ir.Text)), None)
        calls, citations = search.parse(candidate.get("groundingMetadata"), response_id,
                                           text.text if text else "")
        searches = len(calls)
        if text is not None:
            text.citations = citations
        blocks = [*calls, *blocks]
        has_calls = any(isinstance(b, ir.ToolCall) for b in blocks)
        try:
            stop = stop_reason(candidate.get("finishReason"), has_calls=has_calls)
        except UpstreamError as error:
            error.usage = parse_usage(body.get("usageMetadata"))  # billed all the same
            raise
    elif (body.get("promptFeedback") or {}).get("blockReason"):
        stop = "content_filter"  # the prompt itself was blocked
    else:
        raise UpstreamError("The upstream answer has no candidates.")
    usage = parse_usage(body.get("usageMetadata"))
    usage.web_searches = searches
    return ir.Response(id=response_id, model=str(body.get("modelVersion") or ""),
                       created=int(time.time()), content=blocks, stop_reason=stop,
                       usage=usage)


# ================================================================ IR -> caller
def render_response(response: ir.Response, *, echo: Echo | None = None) -> dict[str, Any]:
    parts = _render_output_parts(response.content)
    content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    candidate: dict[str, Any] = {"content": content,
                                 "finishReason": STOP_TO_WIRE[response.stop_reason], "index": 0}
    searches = [b for b in response.content if isinstance(b, ir.WebSearchCall)]
    citations = [c for b in response.content if isinstance(b, ir.Text) for c in b.citations]
    if searches or citations:
        text = "".join(b.text for b in response.content if isinstance(b, ir.Text))
        candidate["groundingMetadata"] = search.render(searches, citations, text)
    return {
        "candidates": [candidate],
        "usageMetadata": render_usage(response.usage),
        "modelVersion": response.model,
        "responseId": response.id,
    }


def _render_output_parts(blocks: list[ir.Block]) -> list[dict[str, Any]]:
    """Thought text never leaks; a Gemini thought signature rides on the next part,
    as Gemini itself sends it."""
    parts: list[dict[str, Any]] = []
    signature: str | None = None
    for block in blocks:
        if isinstance(block, ir.Thinking):
            if block.provider == PROVIDER and block.signature:
                signature = block.signature
            continue
        if isinstance(block, ir.ToolCall):
            part = render_function_call(block)
        elif isinstance(block, ir.Text | ir.Refusal):
            if not block.text:
                continue
            part = {"text": block.text}
        elif isinstance(block, ir.Image):
            part = render_image(block)
        else:
            continue  # tool results never appear in an answer
        if signature and "thoughtSignature" not in part:
            part["thoughtSignature"], signature = signature, None
        parts.append(part)
    if signature:
        parts.append({"text": "", "thoughtSignature": signature})
    return parts
