"""OpenAI Chat Completions (`POST /v1/chat/completions`), both directions.

The codec's surface (`afk.dialects.base.Codec`). The layout every dialect package has:
`wire` (names, stop reasons), `messages` (messages <-> IR messages), `requests`,
`responses` (bodies and usage), `decoder` / `encoder` (the stream state machines),
`errors`, `forwarding` (what a passthrough body may carry).
"""

from afk.dialects.openai_chat.decoder import StreamDecoder, passthrough_event
from afk.dialects.openai_chat.encoder import StreamEncoder
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
