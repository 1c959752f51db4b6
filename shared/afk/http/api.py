"""The account API's framework: FastAPI, for validated bodies and an OpenAPI
document (`/v1/account/openapi.json`). Only the account function (and `afk
dev`, on its first account request) imports this module: the generation functions stay on bare Starlette,
where FastAPI's import would cost every cold start (bench/RESULTS.md).

Errors keep the account API's shape (OpenAI's, as before): a body or query
that does not validate is a 400 `invalid_request_error` whose `param` names
the field, with the message our own parsers give where they run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from afk.auth import Principal
from afk.dialects.openai_errors import render_error
from afk.errors import InvalidRequest, RequestTooLarge
from afk.gateway import Gateway
from afk.http.apps import ACCOUNT_PATHS
from afk.http.common import (
    MAX_BODY_BYTES,
    CompactJSONResponse,
    authenticate,
    error_response,
    gateway_of,
)

OPENAPI_URL = "/v1/account/openapi.json"
# The type of a validation error our own parsers raise (afk.http.bodies): its
# message is already written for the caller.
OUR_ERROR = "afk"


def api_router(tag: str) -> APIRouter:
    """One module's routes. Bodies over 10 MB are a 413 in the API's shape (a limit
    on the router, not the app: the app's would answer in plain text)."""
    return APIRouter(tags=[tag], default_response_class=CompactJSONResponse,
                     max_body_size=MAX_BODY_BYTES)


def create(**kwargs: Any) -> FastAPI:
    """The app for the account routes (and any others in `kwargs["routes"]`): the
    same middleware and error handlers as every function's, plus validation."""
    handlers = {**kwargs.pop("exception_handlers"), RequestValidationError: _invalid}
    kwargs["middleware"] = [*kwargs["middleware"], Middleware(BodyLimit)]
    return FastAPI(title="afk gateway account API", version="1", openapi_url=OPENAPI_URL,
                   docs_url=None, redoc_url=None, exception_handlers=handlers, **kwargs)


# The account API's paths (`afk dev` sends only these to this app: apps.Deferred).
PATHS = ACCOUNT_PATHS


class BodyLimit:
    """A body declared over MAX_BODY_BYTES is a 413 in the API's shape before it is
    read (FastAPI's own limit, on the routers for undeclared lengths, answers in
    plain text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ours = scope["type"] == "http" and scope["path"].startswith(PATHS)
        length = Headers(scope=scope).get("content-length") if ours else None
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            error = RequestTooLarge(f"The request body exceeds {MAX_BODY_BYTES} bytes.")
            await error_response(error, render_error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid_request(exc), render_error)


def invalid_request(exc: RequestValidationError) -> InvalidRequest:
    """The first thing wrong with a request, said as our 400 naming the field."""
    error = exc.errors()[0]
    path = [str(p) for p in error["loc"][1:]]  # past "body" / "query" / "path"
    param = path[0] if path else None
    kind = error["type"]
    if kind == OUR_ERROR:
        message = error["msg"]
    elif kind == "json_invalid":
        message = "The request body is not valid JSON."
    elif kind == "missing" and param is None:
        message = "The request body is empty; send a JSON object."
    elif kind == "missing":
        message = f"'{param}' is required."
    elif param is None or error["loc"][0] == "body" and path[0].isdigit():
        message = "Send a JSON object (Content-Type: application/json)."
    else:
        message = f"Invalid '{'.'.join(path)}': {error['msg']}."
    return InvalidRequest(message, param=param)


async def caller(request: Request) -> Principal:
    return await authenticate(request)


async def manager(request: Request) -> Principal:
    """The caller, if its key may manage the account (403 for an inference key)."""
    principal = await authenticate(request)
    principal.require("manage")
    return principal


async def gateway(request: Request) -> Gateway:
    """The app's services. A coroutine, so FastAPI calls it on the event loop: a plain
    function dependency would cost a worker-thread hop per request to read an attribute."""
    return gateway_of(request)


Caller = Annotated[Principal, Depends(caller)]
Manager = Annotated[Principal, Depends(manager)]
GatewayOf = Annotated[Gateway, Depends(gateway)]
