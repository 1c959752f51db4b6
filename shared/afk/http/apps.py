"""The app factory: one FastAPI app per Lambda function, and all of them at once
for `afk dev`.

Every app renders errors in the OpenAI shape for now: the routes it serves
are OpenAI-dialect or our own (which follow the OpenAI shape).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from afk.dialects import openai_chat
from afk.errors import GatewayError, InvalidRequest, NotFound
from afk.gateway import Gateway, default_gateway
from afk.http.common import RequestIdMiddleware, error_response

log = logging.getLogger("afk.http")

APPS = ("models", "chat", "account", "dashboard")


def create_app(name: str, gateway: Gateway | None = None) -> FastAPI:
    """`name` is a function's name (see APPS), or "local" for every route."""
    if name not in (*APPS, "local"):
        raise ValueError(f"unknown app {name!r}; expected one of {APPS} or 'local'")
    app = FastAPI(title=f"afk gateway ({name})", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.gateway = gateway or default_gateway()
    names = APPS if name == "local" else (name,)
    if "models" in names:
        from afk.http import models

        app.include_router(models.router)
    if "chat" in names:
        from afk.http import chat

        app.include_router(chat.router)
    if "account" in names:
        from afk.http import account

        app.include_router(account.router)
    if "dashboard" in names:
        from afk.http import dashboard

        app.include_router(dashboard.router)
    _install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    render = openai_chat.render_error

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, error: GatewayError) -> Response:
        return error_response(error, render)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            mapped: GatewayError = NotFound(f"Unknown route: {request.method} "
                                            f"{request.url.path}", code="unknown_route")
        else:
            mapped = GatewayError(str(error.detail), status=error.status_code,
                                  code="method_not_allowed" if error.status_code == 405 else None)
            mapped.kind = "invalid_request"
        return error_response(mapped, render)

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(GatewayError("The gateway failed unexpectedly; nothing was "
                                           "charged for the failed part. Retry the request."),
                              render)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> Response:
        return error_response(InvalidRequest(str(error.errors()[:1])), render)
