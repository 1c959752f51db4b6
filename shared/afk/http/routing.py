"""Routes as plain Starlette routes, declared with decorators.

The generation routes: Starlette, not FastAPI. They parse their own bodies (the
codecs are the schema), so FastAPI's validation layer would only cost import
time, about a quarter of a second of every cold start (bench/RESULTS.md). The
account API is FastAPI's (http/api.py): validated bodies and an OpenAPI document.
Path parameters arrive as keyword arguments, the request as `request`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

Endpoint = Callable[..., Awaitable[ASGIApp]]  # a Response, or any ASGI answer


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, path: str, method: str) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            async def call(request: Request) -> ASGIApp:
                return await endpoint(**request.path_params, request=request)

            call.__name__ = endpoint.__name__
            self.routes.append(Route(path, call, methods=[method]))
            return endpoint

        return register

    def get(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "GET")

    def post(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "POST")

    def put(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "PUT")

    def patch(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "PATCH")

    def delete(self, path: str) -> Callable[[Endpoint], Endpoint]:
        return self.route(path, "DELETE")
