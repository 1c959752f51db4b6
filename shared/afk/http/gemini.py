"""Gemini: `POST /{version}/models/{model}:generateContent`, `:streamGenerateContent`,
`:countTokens`, for `v1beta` and `v1` (google-genai's default) alike.

A model name may come with or without its `models/` prefix; `alt=sse` selects
SSE framing, its absence Google's progressively streamed JSON array.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from afk import embeddings, pipeline
from afk.auth import Principal
from afk.dialects import gemini
from afk.errors import InvalidRequest, NotFound
from afk.http.common import (
    MAX_BODY_BYTES,
    CompactJSONResponse,
    authenticate,
    json_body,
    request_id,
)
from afk.http.routing import DialectRoute
from afk.http.streaming import GEMINI_SSE, JSON_ARRAY, Answer, answer
from afk.money import format_usd

VERSIONS = ("v1", "v1beta", "v1alpha")
METHODS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent",
           "batchEmbedContents")


async def model_method(request: Request) -> Response | Answer:
    version, target = request.path_params["version"], request.path_params["target"]
    model, _, method = target.removeprefix("models/").rpartition(":")
    if version not in VERSIONS or method not in METHODS or not model:
        raise NotFound(f"Unknown route: POST {request.url.path}", code="unknown_route")
    principal = await authenticate(request)
    gateway = request.app.state.gateway
    if method in ("embedContent", "batchEmbedContents"):
        return await _embed(request, principal, model, method)
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
        pipeline.generate, gateway, gemini, principal,
        pipeline.Generation(request=parsed, body=body, endpoint=method,
                            request_id=request_id(request))),
        stream_framing=GEMINI_SSE if request.query_params.get("alt") == "sse" else JSON_ARRAY)


async def _embed(request: Request, principal: Principal, model: str,
                 method: str) -> Response:
    """embedContent / batchEmbedContents (https://ai.google.dev/api/embeddings), on any
    embedding model of the catalog."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    batch = method == "batchEmbedContents"
    items = body.get("requests") if batch else [body]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict)
                                                           for i in items):
        raise InvalidRequest("'requests' must be a non-empty array of embedContent "
                             "requests.", param="requests")
    texts, dimensions = [], {i.get("outputDimensionality") for i in items}
    for i, item in enumerate(items):
        parts = (item.get("content") or {}).get("parts") if isinstance(
            item.get("content"), dict) else None
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            raise InvalidRequest(f"requests[{i}].content must have parts.", param="content")
        texts.append("".join(str(p.get("text") or "") for p in parts))
    if len(dimensions) > 1:
        raise InvalidRequest("Every request of a batch must ask for the same "
                             "outputDimensionality.", param="outputDimensionality")
    done = await embeddings.embed(request.app.state.gateway, principal, model,
                                  embeddings.check_inputs(texts, "content"),
                                  dimensions=dimensions.pop(), endpoint=method,
                                  request_id=request_id(request))
    vectors = [{"values": v} for v in done.vectors]
    return CompactJSONResponse({"embeddings": vectors} if batch else {"embedding": vectors[0]},
                               headers={"x-afk-cost": format_usd(done.settlement.charge),
                                        "x-afk-provider": done.model.provider})


routes = [DialectRoute("/{version}/models/{target:path}", model_method, methods=["POST"],
                       errors=gemini)]
