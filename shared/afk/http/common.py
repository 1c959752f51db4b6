"""What every route shares: request ids, JSON bodies, dialect-shaped errors."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from afk import observability
from afk.auth import Principal, key_from
from afk.dialects import shapes
from afk.dialects.jsonwire import dumps
from afk.errors import GatewayError, InvalidRequest, RequestTooLarge
from afk.http.json_input import parse_json

if TYPE_CHECKING:
    from afk.gateway import Gateway

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
REQUEST_ID_HEADER = "x-afk-request-id"
# The scope key under which `GatewayApp` leaves the server's own `send` (see there).
SERVER_SEND = "afk.server_send"


class RequestIdMiddleware:
    """Gives every request an id (the hold and ledger id too) and echoes it in
    `x-afk-request-id` on every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(12)}"
        scope.setdefault("state", {})["request_id"] = request_id

        status = 500  # if the app dies before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        with observability.request_scope(request_id, _asgi=scope):
            try:
                await self.app(scope, receive, send_with_id)
            finally:  # after the last body byte: a stream's settlement is in by now
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                observability.observe_request(route, status)


def request_id(request: Request) -> str:
    value: str = request.state.request_id
    return value


def gateway_of(request: Request) -> Gateway:
    """The app's per-process services (set by `afk.http.apps.build`)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


def compact_json(content: Any) -> bytes:
    return dumps(content).encode()


class CompactJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return compact_json(content)


async def json_body(request: Request, *, dialect: str | None = None,
                    max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body, or a 400/413 the caller can act on (strict JSON:
    see afk.http.json_input; a body written in another dialect than the route's
    names its route: see afk.dialects.shapes)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise RequestTooLarge(f"The request body exceeds {max_bytes} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked upload stops at the limit too
        size += len(chunk)
        if size > max_bytes:
            raise RequestTooLarge(f"The request body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    body = parse_json(raw)
    if dialect is not None:
        shapes.check_body(body, dialect)
    return body


def caller_key(request: Request) -> str | None:
    return key_from(request.headers, request.query_params)


async def authenticate(request: Request) -> Principal:
    """The caller behind the request's key (401 otherwise), by the app's gateway."""
    import anyio.to_thread

    gateway = gateway_of(request)
    key = caller_key(request)
    # A warm process usually knows the key: skip the thread hop then.
    principal = gateway.auth.cached(key)
    if principal is None:
        principal = await anyio.to_thread.run_sync(gateway.auth.authenticate, key)
    observability.bind(account_id=principal.account_id)
    return principal


ErrorRenderer = Callable[[GatewayError], dict[str, Any]]


def error_response(error: GatewayError, render: ErrorRenderer) -> Response:
    headers = {"x-should-retry": "true" if error.status in (429, 502, 503, 504) else "false"}
    if error.retry_after is not None:
        headers["retry-after"] = str(int(error.retry_after))
    return CompactJSONResponse(render(error), status_code=error.status, headers=headers)
