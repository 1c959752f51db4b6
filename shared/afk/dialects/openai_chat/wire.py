"""What every part of the Chat Completions codec shares: names, stop reasons, JSON."""

from __future__ import annotations

from afk import ir

__all__ = ["DIALECT", "DONE"]

DIALECT = "openai_chat"
DONE = "[DONE]"

STOP_FROM_WIRE: dict[str, ir.StopReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "function_call": "tool_calls", "content_filter": "content_filter",
}
STOP_TO_WIRE: dict[str, str] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "stop_sequence": "stop", "content_filter": "content_filter", "refusal": "content_filter",
    "pause": "stop", "error": "stop",
}

