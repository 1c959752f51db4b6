"""OpenAI Chat Completions (`POST /v1/chat/completions`), both directions."""

from afk.dialects.openai_chat.decoder import StreamDecoder, StreamEncoder, passthrough_event
from afk.dialects.openai_chat.errors import error_from_body, render_error, render_stream_error
from afk.dialects.openai_chat.forwarding import check_forwardable, check_translatable
from afk.dialects.openai_chat.requests import (
    parse_request,
    patch_request,
    render_request,
    requested_max_tokens,
    strip_reasoning,
)
from afk.dialects.openai_chat.responses import (
    parse_response,
    parse_usage,
    render_response,
    render_usage,
)
from afk.dialects.openai_chat.wire import DIALECT, DONE

__all__ = [
    "DIALECT", "DONE", "StreamDecoder", "StreamEncoder", "check_forwardable",
    "check_translatable", "error_from_body", "parse_request",
    "parse_response", "parse_usage", "passthrough_event", "patch_request", "render_error",
    "render_request", "render_response", "render_stream_error", "render_usage",
    "requested_max_tokens", "strip_reasoning",
]
