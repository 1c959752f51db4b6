"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`), both
directions: the codec in `codec`, conversations in `history`, answers, usage
and errors in `answers`, the stream state machines in `streams`, what a passthrough
may carry in `forwarding`."""

from afk.dialects.anthropic.decoder import StreamDecoder, StreamEncoder
from afk.dialects.anthropic.forwarding import check_forwardable
from afk.dialects.anthropic.messages import PROVIDER
from afk.dialects.anthropic.requests import (
    DIALECT,
    check_translatable,
    parse_count_tokens,
    parse_request,
    parse_response,
    passthrough_event,
    patch_request,
    render_count_tokens,
    render_error,
    render_request,
    render_response,
    render_stream_error,
    strip_reasoning,
)
from afk.dialects.anthropic.responses import error_from_body, parse_usage, render_usage

__all__ = [
    "DIALECT", "PROVIDER", "StreamDecoder", "StreamEncoder", "check_forwardable",
    "check_translatable",
    "error_from_body", "parse_count_tokens", "parse_request", "parse_response", "parse_usage",
    "passthrough_event", "patch_request", "render_count_tokens", "render_error",
    "render_request", "render_response", "render_stream_error", "render_usage",
    "strip_reasoning",
]
