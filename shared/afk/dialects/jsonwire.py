"""JSON on the wire, written once for every dialect: compact text out, stream
events in, and tool-call arguments as the object the wire formats carry them as.

Dialects import this module and the IR, never each other.
"""

from __future__ import annotations

import json
from json.scanner import make_scanner
from typing import Any

from afk.errors import UpstreamError
from afk.sse import ServerSentEvent

MALFORMED_EVENT = "The upstream sent a malformed stream event."


def _unserializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` builds an encoder per
# call (~2 µs of a ~3 µs stream event); this one is built once. No circular check:
# what is written is built here or parsed from JSON, never cyclic.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # CPython's C encoder
_ENCODE = _c_make_encoder(None, _unserializable, json.encoder.encode_basestring, None,
                          ":", ",", False, False, True) if _c_make_encoder else None


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what every provider sends and accepts)."""
    if _ENCODE is None:  # an interpreter without the C encoder
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "".join(_ENCODE(value, 0))


# What json.loads runs (typeshed misdeclares make_scanner's argument: a JSONDecoder).
_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


class TextTemplate:
    """A JSON document that changes only in one string field from event to event (a
    text delta): the JSON around it written once, the text alone each time
    (bench/LEVERS.md). Built from the document rendered with that field empty: the
    bare sequence `"key":""` can only be the field, since inside a JSON string
    every quote is escaped."""

    __slots__ = ("_head", "_tail")

    def __init__(self, rendered: str, key: str) -> None:
        head, found, self._tail = rendered.partition(f'"{key}":""')
        if not found:
            raise ValueError(f"no empty {key!r} in the rendered document")
        self._head = f'{head}"{key}":'

    def __call__(self, text: str) -> str:
        return self._head + dumps(text) + self._tail


def load_event(event: ServerSentEvent) -> dict[str, Any]:
    """An upstream stream event's JSON object; anything else is a broken stream (502)."""
    text = event.data
    try:
        # json.loads' own scanner, without its checks for blanks around the value
        # (~0.5 µs an event); anything but one bare value goes the whole way.
        data, end = _scan(text, 0)
        if end != len(text):
            data = json.loads(text)
    except (StopIteration, ValueError):
        try:
            data = json.loads(text)
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


def append_text(holder: dict[str, Any], key: str, text: str) -> None:
    """`holder[key] += text` in amortized constant time: `+=` on a dict item copies
    the whole text each time (the dict still holds it), quadratic over a long stream
    (15 µs an event at 50,000 events); a local that alone holds the text grows it in
    place. The key keeps its place in the dict."""
    so_far = holder[key]
    holder[key] = ""
    so_far += text
    holder[key] = so_far
