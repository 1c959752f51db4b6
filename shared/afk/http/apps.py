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
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from afk import observability
from afk.errors import GatewayError, NotFound
from afk.gateway import Gateway, default_gateway
from afk.http.common import SERVER_SEND, RequestIdMiddleware, error_response
from afk.http.routing import error_codec

log = logging.getLogger("afk.http")

# One per Lambda function; each names the module in afk.http holding its routes
# (and any more modules whose routes the same function serves): a `routes` list,
# or, for the account API's FastAPI modules, a `router` (an APIRouter).
APPS = ("models", "chat", "responses", "messages", "gemini", "account", "dashboard")
MODULES = {"account": ("account", "usage", "payments"), "chat": ("chat", "embeddings")}
API_MODULES = frozenset(MODULES["account"])
# The account API's paths (its function's routes; afk/http/api.py).
ACCOUNT_PATHS = ("/v1/account", "/webhooks/")


def create_app(name: str, gateway: Gateway | None = None) -> Starlette:
    """`name` is a function's name (see APPS), or "local" for every route."""
    if name not in (*APPS, "local"):
        raise ValueError(f"unknown app {name!r}; expected one of {APPS} or 'local'")
    names = APPS if name == "local" else (name,)
    gateway = gateway or default_gateway()
    # `afk dev` ("local") serves the account API from an app of its own built on its
    # first request (`Deferred`): FastAPI and pydantic were most of what `afk dev`
    # imported before it could answer a first chat call (bench/LEVERS.md).
    served = names if name != "local" else tuple(n for n in names if n != "account")
    building: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if "account" in served:  # before anything imports FastAPI (http/lean_fastapi.py)
        from afk.http import lean_fastapi

        building = lean_fastapi.without_pydantic_v1()
    with building:
        # Imported on demand: a function pays only for the routes it serves.
        routes = [route for app_name in served
                  for module in MODULES.get(app_name, (app_name,)) for route in _routes(module)]
        middleware = [Middleware(RequestIdMiddleware)]
        if name == "local":
            middleware.insert(0, Middleware(Deferred, paths=ACCOUNT_PATHS,
                                            build=lambda: create_app("account", gateway)))
        parts: dict[str, Any] = {"routes": routes, "middleware": middleware,
                                 "exception_handlers": _error_handlers(), "lifespan": _lifespan}
        if name == "account":  # FastAPI: validated bodies, an OpenAPI document (http/api.py)
            from afk.http import api

            app: Starlette = api.create(**parts)
        else:
            app = GatewayApp(**parts)
    app.state.gateway = gateway
    observability.configure(gateway.settings)
    return app


class GatewayApp(Starlette):
    """Starlette, leaving the server's `send` in the scope (`SERVER_SEND`) for a
    streamed answer's body messages (afk/http/streaming.py): every `send` wrapper
    between the server and a route (Starlette's ServerErrorMiddleware and
    exception handling, our RequestIdMiddleware) acts on `http.response.start`
    only, which still goes through them all; a stream's hundreds of body messages
    need not (a few µs each, bench/LEVERS.md). A middleware that rewrites body
    messages must not be added to this stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        await super().__call__(scope, receive, send)


class Deferred:
    """Requests under `paths` go to an app built by `build()` on the first of them, in
    a worker thread (importing FastAPI is ~0.3 s of CPU: the event loop keeps
    serving meanwhile), with its own middleware and error handlers; every other
    request to the app this wraps."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...],
                 build: Callable[[], ASGIApp]) -> None:
        self.app = app
        self._paths = paths
        self._build = build
        self._built: ASGIApp | None = None
        self._lock = threading.Lock()

    def _get(self) -> ASGIApp:
        with self._lock:  # two first requests at once build it once
            if self._built is None:
                self._built = self._build()
            return self._built

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self._paths):
            built = self._built
            if built is None:
                built = await anyio.to_thread.run_sync(self._get)
            await built(scope, receive, send)
            return
        await self.app(scope, receive, send)


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
