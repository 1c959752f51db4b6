"""`GET /v1/models` and `GET /v1/models/{id}`: the account's models with prices.

OpenAI's list shape plus `pricing`; Gemini's shape under `/v1beta`, and under
`/v1` when the caller authenticates the Gemini way (`x-goog-api-key` or
`?key=`), since google-genai lists models on `/v1/models` too.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request

from afk.billing.money import format_usd, to_pico
from afk.catalog import Model
from afk.errors import ModelNotFound, NotFound
from afk.gateway import AccountView, Gateway
from afk.http.common import CompactJSONResponse, authenticate
from afk.http.routing import Router

router = Router()


def render_model(model: Model, view: AccountView) -> dict[str, Any]:
    cap = view.caps.get(model.id)
    prices = model.prices
    return {
        "id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by,
        "display_name": model.display_name,
        "context_window": model.context_window, "max_output_tokens": model.max_output_tokens,
        "pricing": {
            "currency": "USD",
            "input_per_million": format_usd(to_pico(prices.input)),
            "cached_input_per_million": format_usd(to_pico(prices.cached_input)),
            "output_per_million": format_usd(to_pico(prices.output)),
            "per_call_cap": format_usd(cap) if cap is not None else None,
        },
    }


def _fresh_view(gateway: Gateway, account_id: str) -> AccountView:
    # A fresh read, not the request-path cache: a cap set a moment ago shows at once.
    return gateway.remember(gateway.store.accounts.require(account_id))


def gemini_shaped(request: Request) -> bool:
    return (not request.url.path.startswith("/v1/") or "x-goog-api-key" in request.headers
            or "key" in request.query_params)


def render_gemini_model(model: Model) -> dict[str, Any]:
    from afk.dialects import gemini

    return gemini.render_model(model.id, model.display_name, model.context_window,
                               model.max_output_tokens)


@router.get("/{version}/models")
async def list_models(version: str, request: Request) -> CompactJSONResponse:
    if version not in ("v1", "v1beta", "v1alpha"):
        raise NotFound(f"Unknown route: GET {request.url.path}", code="unknown_route")
    gateway: Gateway = request.app.state.gateway
    principal = await authenticate(request)
    view = await anyio.to_thread.run_sync(_fresh_view, gateway, principal.account_id)
    models = await anyio.to_thread.run_sync(gateway.callable_models, view)
    if gemini_shaped(request):
        from afk.dialects import gemini

        return CompactJSONResponse(gemini.render_model_list(
            [render_gemini_model(m) for m in models]))
    return CompactJSONResponse({"object": "list", "data": [render_model(m, view)
                                                           for m in models]})


@router.get("/{version}/models/{model_id:path}")
async def get_model(version: str, model_id: str, request: Request) -> CompactJSONResponse:
    if version not in ("v1", "v1beta", "v1alpha"):
        raise NotFound(f"Unknown route: GET {request.url.path}", code="unknown_route")
    gateway: Gateway = request.app.state.gateway
    principal = await authenticate(request)
    view = await anyio.to_thread.run_sync(_fresh_view, gateway, principal.account_id)
    model = gateway.catalog.get(model_id.removeprefix("models/"))
    if model is None or (view.models is not None and model.id not in view.models):
        raise ModelNotFound(model_id)
    await anyio.to_thread.run_sync(gateway.require_credentials, model)
    model = view.priced(model)
    if gemini_shaped(request):
        return CompactJSONResponse(render_gemini_model(model))
    return CompactJSONResponse(render_model(model, view))
