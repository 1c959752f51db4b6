"""`POST /v1/chat/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from afk import pipeline
from afk.dialects import openai_chat
from afk.http.common import CompactJSONResponse, authenticate, json_body, request_id

router = APIRouter()

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def respond(outcome: pipeline.Outcome) -> Response:
    if outcome.stream is not None:
        return StreamingResponse(outcome.stream, media_type="text/event-stream",
                                 headers={**SSE_HEADERS, **outcome.headers})
    return CompactJSONResponse(outcome.body, headers=outcome.headers)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    principal = await authenticate(request)
    body = await json_body(request)
    outcome = await pipeline.generate(request.app.state.gateway, openai_chat, principal, body,
                                      endpoint="chat.completions",
                                      request_id=request_id(request))
    return await respond(outcome)
