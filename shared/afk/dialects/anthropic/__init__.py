"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`), both
directions. The codec's surface (`afk.dialects.base.Codec`), by the layout every
dialect package has (README of afk/dialects):

* `wire`: names, tool ids and inputs, stop reasons, signatures;
* `messages`: system prompt + messages <-> IR messages;
* `requests`: request bodies both ways, the passthrough patch, count_tokens;
* `responses`: response bodies, content blocks, usage;
* `decoder` / `encoder`: the stream state machines;
* `errors`: error bodies both ways, in-stream errors;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `search` (hosted web search) and `models` (the model-list shape).
"""

from afk.dialects.anthropic.decoder import StreamDecoder, passthrough_event
from afk.dialects.anthropic.encoder import StreamEncoder
from afk.dialects.anthropic.errors import error_from_body, render_error, render_stream_error
from afk.dialects.anthropic.forwarding import check_forwardable
from afk.dialects.anthropic.requests import (
    check_translatable,
    parse_count_tokens,
    parse_request,
    patch_request,
    render_count_tokens,
    render_request,
    strip_reasoning,
)
from afk.dialects.anthropic.responses import (
    parse_response,
    parse_usage,
    render_response,
    render_usage,
)
from afk.dialects.anthropic.wire import DIALECT, PROVIDER

__all__ = [
    "DIALECT", "PROVIDER", "StreamDecoder", "StreamEncoder", "check_forwardable",
    "check_translatable",
    "error_from_body", "parse_count_tokens", "parse_request", "parse_response", "parse_usage",
    "passthrough_event", "patch_request", "render_count_tokens", "render_error",
    "render_request", "render_response", "render_stream_error", "render_usage",
    "strip_reasoning",
]
