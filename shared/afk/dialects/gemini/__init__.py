"""Gemini generateContent (`POST /{v}/models/{m}:generateContent` and
`:streamGenerateContent`), both directions.

The codec's surface (`afk.dialects.base.Codec`). Callers mix camelCase and proto
snake_case keys at any depth (google-genai does); bodies are normalised once on
entry (`keys`), and everything the codec emits is camelCase. The layout every
dialect package has:

* `wire`: names;
* `messages`: systemInstruction + contents <-> IR messages, call/response pairing;
* `requests`: request bodies, the passthrough patch, `check_translatable`, countTokens;
* `responses`: response bodies, usage, finish reasons;
* `decoder` / `encoder`: the stream state machines;
* `errors`: error bodies, both ways;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `search` (Google Search grounding) and `models` (the model-list shape);
* and Gemini's own: `keys` (key spelling), `parts` (content parts <-> IR blocks).
"""

from __future__ import annotations

from afk.dialects.gemini.decoder import StreamDecoder, passthrough_event
from afk.dialects.gemini.encoder import StreamEncoder
from afk.dialects.gemini.errors import error_from_body, render_error, render_stream_error
from afk.dialects.gemini.forwarding import check_forwardable
from afk.dialects.gemini.keys import normalize_keys
from afk.dialects.gemini.models import render_model, render_model_list
from afk.dialects.gemini.parts import render_function_call
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
from afk.dialects.gemini.wire import DIALECT, PROVIDER

__all__ = [
    "DIALECT", "MAX_STOP_SEQUENCES", "PROVIDER", "StreamDecoder",
    "StreamEncoder", "check_forwardable", "check_translatable", "error_from_body",
    "normalize_keys",
    "parse_count_tokens", "parse_request", "parse_response", "parse_usage",
    "passthrough_event", "patch_request", "render_count_tokens", "render_error",
    "render_function_call", "render_model", "render_model_list",
    "render_request", "render_response", "render_stream_error", "render_usage",
    "strip_reasoning",
]
