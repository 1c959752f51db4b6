"""OpenAI Responses (`POST /v1/responses`, `GET /v1/responses/{id}/input_items`),
both directions.

The codec's surface (`afk.dialects.base.Codec`), plus the item-level helpers the
pipeline needs to keep conversation state. The layout every dialect package has:

* `wire`: names, deterministic item ids, tool-name flattening, signatures,
  custom-tool input, usage and status <-> stop reason;
* `messages`: input items <-> IR messages (`parse_items`, `render_items`);
* `requests`: request bodies, `check_translatable`, the passthrough patch,
  the upstream body, `echo_fields`;
* `responses`: response objects both ways, output items, the input-items list;
* `decoder` / `encoder`: the stream state machines;
* `errors`: error bodies and in-stream failures;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `search`: hosted web search.
"""

from __future__ import annotations

from afk.dialects.openai_responses.decoder import StreamDecoder, passthrough_event
from afk.dialects.openai_responses.encoder import StreamEncoder, render_stream_error
from afk.dialects.openai_responses.errors import error_from_body, render_error
from afk.dialects.openai_responses.forwarding import check_forwardable
from afk.dialects.openai_responses.messages import parse_items, render_items
from afk.dialects.openai_responses.requests import (
    check_translatable,
    echo_fields,
    parse_request,
    patch_request,
    render_request,
    strip_reasoning,
)
from afk.dialects.openai_responses.responses import (
    parse_response,
    render_input_items_list,
    render_output_items,
    render_response,
)
from afk.dialects.openai_responses.wire import DIALECT, PROVIDER, parse_usage, render_usage

__all__ = [
    "DIALECT", "PROVIDER", "StreamDecoder", "StreamEncoder", "check_forwardable",
    "check_translatable",
    "echo_fields", "error_from_body", "parse_items", "parse_request", "parse_response",
    "parse_usage", "passthrough_event", "patch_request", "render_error",
    "render_input_items_list", "render_items", "render_output_items", "render_request",
    "render_response", "render_stream_error", "render_usage", "strip_reasoning",
]
