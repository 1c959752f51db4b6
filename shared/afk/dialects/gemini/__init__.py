"""Gemini generateContent (`POST /{v}/models/{m}:generateContent` and
`:streamGenerateContent`), both directions.

This package is the codec's surface (the same names as every dialect). Callers
mix camelCase and proto snake_case keys at any depth (google-genai does);
bodies are normalised once on entry (`keys`), and everything the codec emits
is camelCase. By responsibility:

* `keys`: key spelling;
* `parts`: content parts <-> IR blocks, shared by the modules below;
* `history`: systemInstruction + contents <-> IR messages, call/response pairing;
* `requests`: request bodies, the passthrough patch, `check_translatable`, countTokens;
* `responses`: response bodies, usage, finish reasons;
* `streams`: stream state machines and the JSON-array framing;
* `errors`: error bodies, both ways;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `models`: the model-list shape.
"""

from __future__ import annotations

from afk.dialects.gemini.decoder import (
    StreamDecoder,
    StreamEncoder,
    passthrough_event,
)
from afk.dialects.gemini.errors import error_from_body, render_error, render_stream_error
from afk.dialects.gemini.forwarding import check_forwardable
from afk.dialects.gemini.keys import normalize_keys
from afk.dialects.gemini.models import render_model, render_model_list
from afk.dialects.gemini.parts import PROVIDER, render_function_call
from afk.dialects.gemini.requests import (
    MAX_STOP_SEQUENCES,
    check_translatable,
    parse_count_tokens,
    parse_request,
    patch_request,
    render_count_tokens,
    render_request,
    strip_reasoning,
)
from afk.dialects.gemini.responses import (
    parse_response,
    parse_usage,
    render_response,
    render_usage,
)

__all__ = ["strip_reasoning",
    "DIALECT", "MAX_STOP_SEQUENCES", "PROVIDER", "StreamDecoder",
    "StreamEncoder", "check_forwardable", "check_translatable", "error_from_body",
    "normalize_keys",
    "parse_count_tokens", "parse_request", "parse_response", "parse_usage",
    "passthrough_event", "patch_request", "render_count_tokens", "render_error",
    "render_function_call", "render_model", "render_model_list",
    "render_request", "render_response", "render_stream_error", "render_usage",
]

DIALECT = "gemini"
