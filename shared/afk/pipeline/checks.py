"""What a call must pass before any money moves: a well-formed request, the
caller's rate limits, a model the caller may call, credit on the account."""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from afk import ir, observability
from afk.auth import Principal
from afk.catalog import Model
from afk.dialects.base import Codec
from afk.errors import GatewayError, InsufficientCredits, InvalidRequest, RateLimited
from afk.gateway import AccountView, Gateway

T = TypeVar("T")


def parse_caller(codec: Codec, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a codec's parser on a caller's body. The codecs validate what callers get
    wrong in practice, with precise messages; a body malformed in a way they do not
    anticipate (an object where a list belongs, deep down) is still the caller's
    400, never our 500."""
    try:
        return parse(*args, **kwargs)
    except GatewayError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
        detail = str(exc).replace("'NoneType' object", "null").replace("'list' object",
                                                                         "an array")
        raise InvalidRequest(f"The request body does not match the {codec.DIALECT} request "
                             f"format: a field has the wrong type or shape ({detail}).",
                             code="invalid_body") from exc


def check_request(request: ir.Request) -> None:
    """What every dialect's parse lets through but no provider accepts: a 400 now,
    before any money moves, instead of a 502 from upstream later."""
    if all(m.role == "system" for m in request.messages):
        raise InvalidRequest("The request has no input to answer: send at least one user "
                             "message.", param="input", code="empty_input")
    for i, message in enumerate(request.messages):
        blocks = [b for b in message.content if isinstance(b, ir.Image)] + [
            part for b in message.content if isinstance(b, ir.ToolResult)
            for part in b.content if isinstance(part, ir.Image)]
        for image in blocks:
            if image.url is not None and not isinstance(image.url, str):
                raise InvalidRequest(f"messages[{i}]: an image URL must be a string.",
                                     param=f"messages[{i}]", code="invalid_image")
            if image.data is not None and not _is_base64(image.data):
                raise InvalidRequest(f"messages[{i}]: an image's base64 data is not valid "
                                     "base64.", param=f"messages[{i}]", code="invalid_image")
    for i, tool in enumerate(request.tools):
        if not tool.name:
            raise InvalidRequest(f"tools[{i}] has no name.", param=f"tools[{i}]")
        if tool.parameters is not None and not isinstance(tool.parameters, dict):
            raise InvalidRequest(f"tools[{i}] ({tool.name}): the parameters schema must be a "
                                 "JSON object.", param=f"tools[{i}]")


def _is_base64(data: object) -> bool:
    if not isinstance(data, str):
        return False
    try:
        # Line-wrapped base64 (MIME style) is fine; anything else that is not
        # base64 alphabet and padding is not.
        binascii.a2b_base64("".join(data.split()).encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def fit_hosted_tools(model: Model, request: ir.Request) -> list[str]:
    """Fit the request's hosted tools to what the model's provider serves: web search
    is dropped (named in the returned list, for `x-afk-dropped-tools`) where the
    provider has none, or cannot serve it next to function tools; never a failed
    call for it. Where it stays, it gets a search limit if the caller set none, so
    the hold can bound the searches."""
    search = request.web_search
    if search is None:
        return []
    spec = model.web_search
    if spec is None or (request.tools and not spec.with_functions):
        request.web_search = None
        return ["web_search"]
    if search.max_uses is None:
        search.max_uses = ir.DEFAULT_MAX_SEARCHES
    return []


async def enforce_rate_limit(gateway: Gateway, principal: Principal) -> None:
    """429 when the caller's key is past its requests per minute."""
    if principal.rpm is not None:
        await _count(gateway, principal.key_id, principal.rpm,
                     f"This key is limited to {principal.rpm} requests per minute.")


async def enforce_count_limit(gateway: Gateway, principal: Principal) -> None:
    """429 when the caller's key is past the token counts it may run per minute."""
    limit = gateway.settings.count_tokens_rpm
    if limit:
        await _count(gateway, f"{principal.key_id}#count", limit,
                     f"This key may count tokens {limit} times a minute.")


async def _count(gateway: Gateway, counter: str, limit: int, refusal: str) -> None:
    wait = await anyio.to_thread.run_sync(gateway.store.keys.count_request, counter, limit)
    if wait is not None:
        raise RateLimited(f"{refusal} Retry in {max(1, round(wait))} s.",
                          code="rate_limit_exceeded", retry_after=max(1.0, wait))


async def model_for(gateway: Gateway, principal: Principal,
                    model_id: str) -> tuple[Model, AccountView]:
    """The caller's model and account view: no I/O and no thread hop when cached."""
    await gateway.ready()  # provider keys resolved off the event loop, once
    if gateway.accounts_cache.get(principal.account_id) is not None:
        model, view = gateway.model_for(principal, model_id)
    else:
        model, view = await anyio.to_thread.run_sync(gateway.model_for, principal, model_id)
    observability.bind(model=model.id)
    return model, view


def require_credit(view: AccountView, what: str) -> None:
    """A 402 before any work the operator pays for (an upstream count, image
    fetches) when the account has no credit at all."""
    if view.credit is not None and view.credit <= 0:
        raise InsufficientCredits(f"{what} needs credit on the account, and its balance is "
                                  "$0. Add credits to continue.", code="insufficient_credits")
