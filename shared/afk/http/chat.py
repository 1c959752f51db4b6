"""`POST /v1/chat/completions`."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request

from afk import pipeline
from afk.dialects import openai_chat
from afk.http.common import authenticate, json_body, request_id
from afk.http.routing import DialectRoute
from afk.http.streaming import Answer, answer


async def chat_completions(request: Request) -> Answer:
    principal = await authenticate(request)
    body = await json_body(request, dialect=openai_chat.DIALECT)
    parsed = pipeline.parse_caller(openai_chat, openai_chat.parse_request, body)
    return answer(request, openai_chat, partial(
        pipeline.generate, request.app.state.gateway, openai_chat, principal,
        pipeline.Generation(request=parsed, body=body, endpoint="chat.completions",
                            request_id=request_id(request))))


routes = [DialectRoute("/v1/chat/completions", chat_completions, methods=["POST"],
                       errors=openai_chat)]
