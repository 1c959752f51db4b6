"""Gemini: `POST /{version}/models/{model}:generateContent`, `:streamGenerateContent`,
`:countTokens`, for `v1beta` and `v1` (google-genai's default) alike.

A model name may come with or without its `models/` prefix; `alt=sse` selects
SSE framing, its absence Google's progressively streamed JSON array.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from afk import pipeline
from afk.dialects import gemini
from afk.errors import NotFound
from afk.http.common import (
    MAX_BODY_BYTES,
    CompactJSONResponse,
    authenticate,
    json_body,
    request_id,
)
from afk.http.routing import Router
from afk.http.streaming import GEMINI_SSE, JSON_ARRAY, Answer, answer

router = Router()

VERSIONS = ("v1", "v1beta", "v1alpha")
METHODS = ("generateContent", "streamGenerateContent", "countTokens")


@router.post("/{version}/models/{target:path}")
async def model_method(version: str, target: str, request: Request) -> Response | Answer:
    model, _, method = target.removeprefix("models/").rpartition(":")
    if version not in VERSIONS or method not in METHODS or not model:
        raise NotFound(f"Unknown route: POST {request.url.path}", code="unknown_route")
    principal = await authenticate(request)
    gateway = request.app.state.gateway
    counting = method == "countTokens"  # free of charge, so smaller bodies only
    body = await json_body(request, dialect=gemini.DIALECT,
                           max_bytes=gateway.settings.count_tokens_max_bytes
                           if counting else MAX_BODY_BYTES)
    if counting:
        count = await pipeline.count_tokens(gateway, gemini, principal, body,
                                            pipeline.parse_caller(
                                                gemini, gemini.parse_count_tokens, body,
                                                model=model))
        return CompactJSONResponse(gemini.render_count_tokens(count))
    stream = method == "streamGenerateContent"
    parsed = pipeline.parse_caller(gemini, gemini.parse_request, body, model=model,
                                   stream=stream)
    return answer(request, gemini, partial(
        pipeline.generate, gateway, gemini, principal, body, endpoint=method,
        request_id=request_id(request), request=parsed),
        stream_framing=GEMINI_SSE if request.query_params.get("alt") == "sse" else JSON_ARRAY)
