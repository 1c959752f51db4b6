"""The Converse codec: what the Bedrock provider sends and reads, an
`afk.dialects.base.UpstreamCodec` (render_request, parse_response, StreamDecoder,
error_from_body)."""

from afk.providers.bedrock.answers import StreamDecoder, parse_response
from afk.providers.bedrock.requests import render_request
from afk.providers.bedrock.wire import DIALECT, PROVIDER, error_from_body, parse_usage

__all__ = ["DIALECT", "PROVIDER", "StreamDecoder", "error_from_body", "parse_response",
           "parse_usage", "render_request"]
