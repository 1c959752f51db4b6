"""What every part of the Messages codec shares: names, tool ids and inputs, stop
reasons, signatures."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from afk import ir
from afk.dialects.jsonwire import arguments_object

__all__ = ["DIALECT", "PROVIDER"]

DIALECT = "anthropic"
PROVIDER = "anthropic"

_VALID_ID = re.compile(r"[a-zA-Z0-9_-]+")
_INVALID_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")

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


def sanitize_id(call_id: str) -> str:
    """A tool id Anthropic accepts (^[a-zA-Z0-9_-]+$). Pure, so a call and its
    result map alike; a hash of the original keeps distinct ids distinct."""
    if _VALID_ID.fullmatch(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:12]
    cleaned = _INVALID_ID_CHARS.sub("_", call_id)[:40]
    return f"{cleaned}_{digest}" if cleaned.strip("_") else f"toolu_{digest}"


def tool_input(arguments: str) -> dict[str, Any]:
    """JSON-text arguments as the object Anthropic's `input` must be. Text that is
    not a JSON object is kept, not dropped, as {"_raw": text}: the caller's tool
    validation then rejects it visibly instead of running with an empty input."""
    value = arguments_object(arguments)
    return value if value is not None else {"_raw": arguments}


def wrap(provider: str | None, signature: str) -> str:
    """A signature as it leaves through this dialect (tagged unless Anthropic's own)."""
    return ir.wrap_signature(provider or "unknown", signature, dialect_provider=PROVIDER)
