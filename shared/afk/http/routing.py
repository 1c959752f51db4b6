"""Routes as Starlette `Route` lists, each carrying the dialect its errors leave in.

Starlette, not FastAPI, for the generation routes: they parse their own bodies
(the codecs are the schema), so FastAPI's validation layer would only cost import
time, about a quarter of a second of every cold start (bench/RESULTS.md). The
account API is FastAPI's (http/api.py): validated bodies and an OpenAPI document.
An error's shape is the route's (`DialectRoute.errors`), never guessed from the
URL; a request no route matches gets OpenAI's, like the account API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from afk.dialects.base import Codec

# The codec whose error shape the caller of a route reads: one per route, or (on
# /v1/models, which three SDKs call) chosen from the request by the route itself.
ErrorDialect = Callable[[Request], "Codec"]


class DialectRoute(Route):
    """A Route whose errors are rendered by `errors(request)`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: list[str],
                 errors: Codec | ErrorDialect) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.errors: ErrorDialect = errors if callable(errors) else _always(errors)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette's Router records the route it matched; FastAPI's (the account
        # function's app, and `afk dev`'s) does not: the route records itself.
        scope["route"] = self
        await super().handle(scope, receive, send)


def _always(codec: Codec) -> ErrorDialect:
    return lambda request: codec


def error_codec(request: Request) -> Codec:
    """The dialect whose error shape the caller of this request's route understands."""
    route = request.scope.get("route")
    if isinstance(route, DialectRoute):
        return route.errors(request)
    from afk.dialects import openai_chat  # no route, or the account API: OpenAI's shape

    return openai_chat
