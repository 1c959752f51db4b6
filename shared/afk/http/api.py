"""The account API's framework: FastAPI, for validated bodies and an OpenAPI
document (`/v1/account/openapi.json`). Only the account function (and `afk
dev`) imports this module: the generation functions stay on bare Starlette,
where FastAPI's import would cost every cold start (bench/RESULTS.md).

Errors keep the account API's shape (OpenAI's, as before): a body or query
that does not validate is a 400 `invalid_request_error` whose `param` names
the field, with the message our own parsers give where they run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from afk.auth import Principal
from afk.dialects import openai_chat
from afk.errors import InvalidRequest
from afk.gateway import Gateway
from afk.http.common import MAX_BODY_BYTES, authenticate, error_response, gateway_of

OPENAPI_URL = "/v1/account/openapi.json"
# The type of a validation error our own parsers raise (afk.http.bodies): its
# message is already written for the caller.
OUR_ERROR = "afk"


def create(**kwargs: Any) -> FastAPI:
    """The app for the account routes (and any others in `kwargs["routes"]`): the
    same middleware and error handlers as every function's, plus validation."""
    handlers = {**kwargs.pop("exception_handlers"), RequestValidationError: _invalid}
    return FastAPI(title="afk gateway account API", version="1", openapi_url=OPENAPI_URL,
                   docs_url=None, redoc_url=None, max_body_size=MAX_BODY_BYTES,
                   exception_handlers=handlers, **kwargs)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid_request(exc), openai_chat.render_error)


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


Caller = Annotated[Principal, Depends(caller)]
Manager = Annotated[Principal, Depends(manager)]
GatewayOf = Annotated[Gateway, Depends(gateway_of)]
