"""Anthropic Messages: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

`?beta=true` (what the SDK's beta namespace adds), any `anthropic-version` and
any `anthropic-beta` are accepted; the version and betas reach the upstream
only when it is Anthropic itself (passthrough).
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from afk import pipeline
from afk.dialects import anthropic
from afk.http.common import CompactJSONResponse, authenticate, json_body, request_id
from afk.http.routing import DialectRoute
from afk.http.streaming import Answer, answer

FORWARDED = ("anthropic-version", "anthropic-beta")


def _caller_headers(request: Request) -> dict[str, str]:
    return {name: request.headers[name] for name in FORWARDED if name in request.headers}


async def messages(request: Request) -> Answer:
    principal = await authenticate(request)
    body = await json_body(request, dialect=anthropic.DIALECT)
    parsed = pipeline.parse_caller(anthropic, anthropic.parse_request, body)
    return answer(request, anthropic, partial(
        pipeline.generate, request.app.state.gateway, anthropic, principal,
        pipeline.Generation(request=parsed, body=body, endpoint="messages",
                            request_id=request_id(request),
                            caller_headers=_caller_headers(request))))


async def count_tokens(request: Request) -> Response:
    principal = await authenticate(request)
    body = await json_body(request, dialect=anthropic.DIALECT,
                           max_bytes=request.app.state.gateway.settings.count_tokens_max_bytes)
    count = await pipeline.count_tokens(request.app.state.gateway, anthropic, principal, body,
                                        pipeline.parse_caller(anthropic,
                                                              anthropic.parse_count_tokens,
                                                              body),
                                        caller_headers=_caller_headers(request))
    return CompactJSONResponse(anthropic.render_count_tokens(count))


routes = [
    DialectRoute("/v1/messages", messages, methods=["POST"], errors=anthropic),
    DialectRoute("/v1/messages/count_tokens", count_tokens, methods=["POST"], errors=anthropic),
]
