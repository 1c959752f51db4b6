"""`GET /v1/models` and `GET /v1/models/{id}`: the account's models with prices.

Each caller gets its own SDK's shape, with `pricing` (the catalog's prices and
the caller's per-call cap) on every model: OpenAI's list by default; Gemini's
under `/v1beta`, and under `/v1` when the caller authenticates the Gemini way
(`x-goog-api-key` or `?key=`), since google-genai lists models on `/v1/models`
too; Anthropic's (a cursor page of `ModelInfo`) when the caller sends
`anthropic-version` or `x-api-key`, as the anthropic SDK and Anthropic's curl
examples do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
from starlette.requests import Request

from afk.catalog import Model
from afk.errors import NotFound
from afk.gateway import AccountView, Gateway
from afk.http.common import CompactJSONResponse, authenticate
from afk.http.routing import DialectRoute
from afk.money import format_usd, to_pico

if TYPE_CHECKING:
    from afk.dialects.base import Codec


def render_pricing(model: Model, view: AccountView) -> dict[str, Any]:
    """Decimal strings in USD: prices per million tokens, and the caller's cap."""
    cap = view.caps.get(model.id)
    prices = model.prices
    return {
        "currency": "USD",
        "input_per_million": format_usd(to_pico(prices.input)),
        "cached_input_per_million": format_usd(to_pico(prices.cached_input)),
        "output_per_million": format_usd(to_pico(prices.output)),
        "per_call_cap": format_usd(cap) if cap is not None else None,
    }


def render_model(model: Model, view: AccountView) -> dict[str, Any]:
    return {
        "id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by,
        "display_name": model.display_name,
        "context_window": model.context_window, "max_output_tokens": model.max_output_tokens,
        "pricing": render_pricing(model, view),
    }


def _fresh_view(gateway: Gateway, account_id: str) -> AccountView:
    # A fresh read, not the request-path cache: a cap set a moment ago shows at once.
    return gateway.remember(gateway.store.accounts.require(account_id))


Shape = Literal["openai", "anthropic", "gemini"]


def list_shape(request: Request) -> Shape:
    """Whose model-list shape (and error shape) the caller of a models route reads."""
    headers = request.headers
    if (not request.url.path.startswith("/v1/") or "x-goog-api-key" in headers
            or "key" in request.query_params):
        return "gemini"
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"


def render_gemini_model(model: Model, view: AccountView) -> dict[str, Any]:
    from afk.dialects import gemini

    return {**gemini.render_model(model.id, model.display_name, model.context_window,
                                  model.max_output_tokens),
            "pricing": render_pricing(model, view)}


def render_anthropic_model(model: Model, view: AccountView) -> dict[str, Any]:
    from afk.dialects.anthropic import models

    return {**models.render_model(model.id, model.display_name, model.created,
                                  model.context_window, model.max_output_tokens),
            "pricing": render_pricing(model, view)}


RENDER = {"openai": render_model, "gemini": render_gemini_model,
          "anthropic": render_anthropic_model}


def render_list(shape: Shape, models: list[Model], view: AccountView,
                request: Request) -> dict[str, Any]:
    rendered = [RENDER[shape](m, view) for m in models]
    if shape == "gemini":
        from afk.dialects import gemini

        return gemini.render_model_list(rendered)
    if shape == "anthropic":
        from afk.dialects.anthropic import models as anthropic_models

        params = request.query_params
        return anthropic_models.render_model_list(
            rendered, limit=params.get("limit"), after_id=params.get("after_id"),
            before_id=params.get("before_id"))
    return {"object": "list", "data": rendered}


async def list_models(request: Request) -> CompactJSONResponse:
    version = request.path_params["version"]
    if version not in ("v1", "v1beta", "v1alpha"):
        raise NotFound(f"Unknown route: GET {request.url.path}", code="unknown_route")
    gateway: Gateway = request.app.state.gateway
    principal = await authenticate(request)
    view = await anyio.to_thread.run_sync(_fresh_view, gateway, principal.account_id)
    models = await anyio.to_thread.run_sync(gateway.callable_models, view, principal)
    return CompactJSONResponse(render_list(list_shape(request), models, view, request))


async def get_model(request: Request) -> CompactJSONResponse:
    version, model_id = request.path_params["version"], request.path_params["model_id"]
    if version not in ("v1", "v1beta", "v1alpha"):
        raise NotFound(f"Unknown route: GET {request.url.path}", code="unknown_route")
    gateway: Gateway = request.app.state.gateway
    principal = await authenticate(request)
    view = await anyio.to_thread.run_sync(_fresh_view, gateway, principal.account_id)
    model, _ = await anyio.to_thread.run_sync(gateway.model_for, principal, model_id, view)
    return CompactJSONResponse(RENDER[list_shape(request)](model, view))


def error_dialect(request: Request) -> Codec:
    """Errors in the shape of the SDK whose model list the caller reads."""
    shape = list_shape(request)
    if shape == "anthropic":
        from afk.dialects import anthropic

        return anthropic
    if shape == "gemini":
        from afk.dialects import gemini

        return gemini
    from afk.dialects import openai_chat

    return openai_chat


routes = [
    DialectRoute("/{version}/models", list_models, methods=["GET"], errors=error_dialect),
    DialectRoute("/{version}/models/{model_id:path}", get_model, methods=["GET"],
                 errors=error_dialect),
]
