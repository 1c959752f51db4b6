"""The OpenAI Responses API: `POST /v1/responses`, and the stored responses:
`GET` / `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`."""

from __future__ import annotations

from functools import partial

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from afk import pipeline
from afk.conversations import ResponsesTurn
from afk.dialects import openai_responses
from afk.errors import InvalidRequest, NotFound
from afk.http.common import CompactJSONResponse, authenticate, json_body, request_id
from afk.http.routing import DialectRoute
from afk.http.streaming import Answer, answer


async def create_response(request: Request) -> Answer:
    principal = await authenticate(request)
    body = await json_body(request, dialect=openai_responses.DIALECT)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    gateway = request.app.state.gateway
    turn = ResponsesTurn(gateway, principal, body)
    parsed, expanded, hooks = await turn.prepare()
    return answer(request, openai_responses, partial(
        pipeline.generate, gateway, openai_responses, principal,
        pipeline.Generation(request=parsed, body=expanded, endpoint="responses",
                            request_id=request_id(request), turn=hooks)))


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"No response found with id '{response_id}'.", param="response_id",
                    code="response_not_found")


async def get_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    principal = await authenticate(request)
    store = request.app.state.gateway.store
    stored = await anyio.to_thread.run_sync(store.responses.get, principal.account_id,
                                            response_id)
    if stored is None:
        raise _not_found(response_id)
    return CompactJSONResponse(stored.response)


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    principal = await authenticate(request)
    gateway = request.app.state.gateway
    if not await anyio.to_thread.run_sync(gateway.store.responses.delete, principal.account_id,
                                          response_id):
        raise _not_found(response_id)
    gateway.responses_usage.discard(principal.account_id)  # room made: read it afresh
    return CompactJSONResponse({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    principal = await authenticate(request)
    store = request.app.state.gateway.store
    stored = await anyio.to_thread.run_sync(store.responses.get, principal.account_id,
                                            response_id)
    if stored is None:
        raise _not_found(response_id)
    params = request.query_params
    limit = params.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise InvalidRequest("'limit' must be an integer from 1 to 100.", param="limit")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
    return CompactJSONResponse(openai_responses.render_input_items_list(
        stored.input_items, limit=int(limit), order=order, after=params.get("after")))


routes = [
    DialectRoute("/v1/responses", create_response, methods=["POST"], errors=openai_responses),
    DialectRoute("/v1/responses/{response_id}", get_response, methods=["GET"],
                 errors=openai_responses),
    DialectRoute("/v1/responses/{response_id}", delete_response, methods=["DELETE"],
                 errors=openai_responses),
    DialectRoute("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"],
                 errors=openai_responses),
]
