"""The app factory: one Starlette app per Lambda function, and all of them at once
for `afk dev`.

Errors leave in the dialect of the route that failed (`DialectRoute.errors`, see
afk/http/routing.py): Anthropic's shape on the Messages routes, Gemini's on
Gemini's, the caller's SDK's on /v1/models, OpenAI's everywhere else (our own
account API follows OpenAI's).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from afk import observability
from afk.errors import GatewayError, NotFound
from afk.gateway import Gateway, default_gateway
from afk.http.common import RequestIdMiddleware, error_response
from afk.http.routing import error_codec

log = logging.getLogger("afk.http")

# One per Lambda function; each names the module in afk.http holding its routes
# (and any more modules whose routes the same function serves): a `routes` list,
# or, for the account API's FastAPI modules, a `router` (an APIRouter).
APPS = ("models", "chat", "responses", "messages", "gemini", "account", "dashboard")
MODULES = {"account": ("account", "usage", "payments"), "chat": ("chat", "embeddings")}
API_MODULES = frozenset(MODULES["account"])


def create_app(name: str, gateway: Gateway | None = None) -> Starlette:
    """`name` is a function's name (see APPS), or "local" for every route."""
    if name not in (*APPS, "local"):
        raise ValueError(f"unknown app {name!r}; expected one of {APPS} or 'local'")
    names = APPS if name == "local" else (name,)
    building: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if "account" in names:  # before anything imports FastAPI (http/lean_fastapi.py)
        from afk.http import lean_fastapi

        building = lean_fastapi.without_pydantic_v1()
    with building:
        # Imported on demand: a function pays only for the routes it serves.
        routes = [route for app_name in names
                  for module in MODULES.get(app_name, (app_name,)) for route in _routes(module)]
        parts: dict[str, Any] = {"routes": routes,
                                 "middleware": [Middleware(RequestIdMiddleware)],
                                 "exception_handlers": _error_handlers(), "lifespan": _lifespan}
        if "account" in names:  # FastAPI: validated bodies, an OpenAPI document (http/api.py)
            from afk.http import api

            app: Starlette = api.create(**parts)
        else:
            app = Starlette(**parts)
    app.state.gateway = gateway or default_gateway()
    observability.configure(app.state.gateway.settings)
    return app


def _routes(name: str) -> list[BaseRoute]:
    module = importlib.import_module(f"afk.http.{name}")
    routes: list[BaseRoute] = module.router.routes if name in API_MODULES else module.routes
    return routes


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    # A server may configure logging after the app is built (uvicorn.run does,
    # replacing its loggers' handlers): redact on whatever handlers it installed.
    observability.install_redaction()
    yield
    # Shutting down (afk dev; on Lambda, SIGTERM when the environment is retired):
    # return this process's idle credit leases now rather than at reconcile time.
    gateway = app.state.gateway
    if "wallet" in vars(gateway):
        try:
            await anyio.to_thread.run_sync(gateway.wallet.release)
        except Exception:  # noqa: BLE001 - the sweeper folds them in anyway
            log.warning("could not return the credit leases at shutdown", exc_info=True)


def _render(error: GatewayError, request: Request) -> Response:
    return error_response(error, error_codec(request).render_error)


async def _gateway_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, GatewayError)
    return _render(error, request)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    mapped: GatewayError
    if error.status_code == 404:
        mapped = NotFound(f"Unknown route: {request.method} {request.url.path}",
                          code="unknown_route")
    else:
        mapped = GatewayError(str(error.detail), status=error.status_code,
                              code="method_not_allowed" if error.status_code == 405 else None)
        mapped.kind = "invalid_request"
    return _render(mapped, request)


async def _unexpected_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error")
    return _render(GatewayError("The gateway failed unexpectedly; nothing was charged for the "
                                "failed part. Retry the request."), request)


def _error_handlers() -> dict[Any, Any]:
    return {GatewayError: _gateway_error, StarletteHTTPException: _http_error,
            Exception: _unexpected_error}
