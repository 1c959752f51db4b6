"""Wire pieces every module of the Responses codec shares: names, ids, tool-name
flattening, reasoning signatures, usage and stop reasons."""

from __future__ import annotations

import hashlib
from typing import Any

from afk import ir
from afk.dialects.jsonwire import arguments_object

__all__ = ["DIALECT", "PROVIDER", "parse_usage", "render_usage"]

DIALECT = "openai_responses"
PROVIDER = "openai"

Skipped = list[str]  # "<where> (<what>)" for each well-formed thing the IR cannot carry

# A namespaced tool (`{type:"namespace", name:"crm", tools:[...]}`) and its calls
# (`function_call{namespace:"crm", name:"lookup"}`) flatten to one IR name,
# "crm__lookup": a name every dialect accepts ([A-Za-z0-9_-]), and reversible
# with the request's tools (see responses.ToolNames).
NAMESPACE_SEPARATOR = "__"

# Redacted thinking (Anthropic `redacted_thinking`) has no Responses counterpart;
# it travels as a reasoning item whose wrapped signature carries this marker so
# it comes back redacted. Only foreign signatures are ever marked (OpenAI has no
# redacted reasoning), and they are always afk1-wrapped, so the marker cannot
# collide with an OpenAI `encrypted_content`.
_REDACTED = "redacted:"


def flat_name(name: str, namespace: str | None) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def item_id(prefix: str, seed: str, index: int) -> str:
    """A deterministic item id (`msg_…`, `fc_…`, `rs_…`) for item `index` of `seed`
    (a response id, or a digest of an item list): stream and non-stream agree."""
    return f"{prefix}_{hashlib.sha256(f'{seed}:{index}'.encode()).hexdigest()[:40]}"


def custom_input(arguments: str) -> str:
    """A custom tool call's free-form `input` from the IR's arguments, `{"input": text}`
    (https://platform.openai.com/docs/guides/function-calling#custom-tools: the input
    is a string). Arguments that are not a JSON object (a foreign model's broken
    JSON) are the input themselves: visible to the tool, never emptied."""
    value = arguments_object(arguments)
    return arguments if value is None else str(value.get("input") or "")


def signature_out(provider: str | None, signature: str, *, redacted: bool = False) -> str:
    """An IR signature as `encrypted_content` (wrapped unless OpenAI's own)."""
    raw = f"{_REDACTED}{signature}" if redacted and provider != PROVIDER else signature
    return ir.wrap_signature(provider or "unknown", raw, dialect_provider=PROVIDER)


def signature_in(encrypted: str) -> tuple[str, str, bool]:
    """(issuer, raw signature, redacted) of an `encrypted_content` a caller sent back."""
    provider, raw = ir.unwrap_signature(encrypted, dialect_provider=PROVIDER)
    if provider != PROVIDER and raw.startswith(_REDACTED):
        return provider, raw[len(_REDACTED):], True
    return provider, raw, False


# ================================================================ usage
def parse_usage(usage: dict[str, Any] | None) -> ir.Usage:
    """Responses usage already follows the IR's conventions (input includes
    cached, output includes reasoning)."""
    usage = usage or {}
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return ir.Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=int(input_details.get("cached_tokens") or 0),
        cache_write_tokens=int(input_details.get("cache_write_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )


def render_usage(usage: ir.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens,
                                 "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


# ================================================================ status <-> stop reason
_INCOMPLETE_FROM_WIRE: dict[str, ir.StopReason] = {
    "max_output_tokens": "length", "content_filter": "content_filter",
}


def stop_reason(response: dict[str, Any], *, has_calls: bool) -> ir.StopReason:
    """The IR stop reason of a completed or incomplete response object."""
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE_FROM_WIRE.get(reason or "", "length")
    return "tool_calls" if has_calls else "stop"


def status_of(reason: ir.StopReason) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for an IR stop reason. Anthropic's `refusal`
    stop is a classifier cut-off: Responses calls that content_filter."""
    if reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if reason in ("content_filter", "refusal"):
        return "incomplete", {"reason": "content_filter"}
    if reason == "error":
        return "failed", None
    return "completed", None


ERROR_STOP = {"code": "server_error", "message": "The model stopped with an error."}
