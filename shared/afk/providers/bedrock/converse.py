"""The Converse codec: what the Bedrock provider sends and reads, in the shape every
HTTPProvider codec has (render_request, parse_response, StreamDecoder,
passthrough_event, error_from_body)."""

from afk.providers.bedrock.answers import StreamDecoder, parse_response, passthrough_event
from afk.providers.bedrock.requests import render_request
from afk.providers.bedrock.wire import DIALECT, PROVIDER, error_from_body, parse_usage

__all__ = ["DIALECT", "PROVIDER", "StreamDecoder", "error_from_body", "parse_response",
           "parse_usage", "passthrough_event", "render_request"]
