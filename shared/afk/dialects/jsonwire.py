"""JSON on the wire, written once for every dialect: compact text out, stream
events in, and tool-call arguments as the object the wire formats carry them as.

Dialects import this module and the IR, never each other.
"""

from __future__ import annotations

import json
from typing import Any

from afk.errors import UpstreamError
from afk.sse import ServerSentEvent

MALFORMED_EVENT = "The upstream sent a malformed stream event."


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what every provider sends and accepts)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load_event(event: ServerSentEvent) -> dict[str, Any]:
    """An upstream stream event's JSON object; anything else is a broken stream (502)."""
    try:
        data = json.loads(event.data)
    except ValueError:
        raise UpstreamError(MALFORMED_EVENT) from None
    if not isinstance(data, dict):
        raise UpstreamError(MALFORMED_EVENT)
    return data


def arguments_object(arguments: str) -> dict[str, Any] | None:
    """A tool call's JSON-text arguments as the object Anthropic's `input` and Gemini's
    `args` must be (https://docs.anthropic.com/en/api/messages, tool_use.input: object;
    https://ai.google.dev/api/caching#FunctionCall, args: Struct): "" (or blanks) is
    no arguments, `{}`. Text that is not a JSON object (a model can emit broken
    JSON) is None: the codec refuses it or carries it visibly, never as an empty
    object a tool would run with."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
