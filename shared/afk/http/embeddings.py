"""`POST /v1/embeddings`, in OpenAI's shape
(https://platform.openai.com/docs/api-reference/embeddings/create): `input` a string
or an array of strings, `dimensions`, `encoding_format` float or base64 (little-
endian float32, what the OpenAI SDK asks for by default)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from starlette.requests import Request

from afk import embeddings
from afk.dialects import openai_chat
from afk.errors import InvalidRequest
from afk.http.common import CompactJSONResponse, authenticate, json_body, request_id
from afk.http.routing import DialectRoute
from afk.money import format_usd


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


async def create_embeddings(request: Request) -> CompactJSONResponse:
    principal = await authenticate(request)
    body = await json_body(request)  # not a chat body: no dialect shape to check
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required.", param="model")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be float or base64.",
                             param="encoding_format")
    texts = embeddings.check_inputs(body.get("input"))
    done = await embeddings.embed(request.app.state.gateway, principal, model, texts,
                                  dimensions=body.get("dimensions"), endpoint="embeddings",
                                  request_id=request_id(request))
    tokens = done.settlement.input_tokens
    payload: dict[str, Any] = {
        "object": "list", "model": done.model.id,
        "data": [{"object": "embedding", "index": i,
                  "embedding": encode(vector, encoding_format)}
                 for i, vector in enumerate(done.vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return CompactJSONResponse(payload, headers={
        "x-afk-cost": format_usd(done.settlement.charge),
        "x-afk-provider": done.model.provider})


routes = [DialectRoute("/v1/embeddings", create_embeddings, methods=["POST"],
                       errors=openai_chat)]  # OpenAI's embeddings API, OpenAI's errors
