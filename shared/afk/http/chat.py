"""`POST /v1/chat/completions`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from afk import pipeline
from afk.dialects import openai_chat
from afk.http.common import authenticate, json_body, request_id
from afk.http.routing import Router
from afk.http.streaming import respond

router = Router()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    principal = await authenticate(request)
    body = await json_body(request, dialect=openai_chat.DIALECT)
    outcome = await pipeline.generate(request.app.state.gateway, openai_chat, principal, body,
                                      endpoint="chat.completions",
                                      request_id=request_id(request))
    return respond(outcome)
