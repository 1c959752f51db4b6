"""One generation request end to end: the only place that knows the order.

auth -> model lookup -> inbound codec: wire -> IR -> quote -> reserve hold
-> provider (passthrough or IR) -> meter -> inbound codec: IR -> wire
-> settle (always: success, upstream failure, timeout or client disconnect)
"""

from __future__ import annotations

import binascii
import dataclasses
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from afk import ir, observability, sse
from afk.auth import Principal
from afk.billing.meter import Meter
from afk.billing.money import format_usd
from afk.billing.prompt import bound_input_tokens
from afk.billing.quote import Quote, estimate_input_tokens, make_quote, search_bound
from afk.billing.wallet import Shortfall
from afk.catalog import Model
from afk.errors import (
    GatewayError,
    InsufficientCredits,
    InvalidRequest,
    RateLimited,
    UpstreamTimeout,
)
from afk.gateway import AccountView, Gateway
from afk.providers import Call
from afk.store import Hold, Settlement
from afk.store.budgets import Budget, OverBudget

log = logging.getLogger("afk.pipeline")
T = TypeVar("T")

RESERVE_ATTEMPTS = 4


@dataclass(slots=True)
class Outcome:
    """What the HTTP layer sends: a JSON body, or a stream of events (framed by
    the HTTP layer: SSE, or Gemini's JSON array). A passthrough event keeps the
    upstream's exact bytes in `raw`."""

    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    stream: AsyncIterator[list[sse.ServerSentEvent]] | None = None  # a batch per write


@dataclass(slots=True, frozen=True)
class Admission:
    """A call whose hold is reserved, about to wait on its upstream (minutes, for a
    reasoning model): what the HTTP layer needs to start answering before the answer
    exists (to keep the connection alive: http/streaming.py)."""

    headers: dict[str, str]
    stream: bool


@dataclass(slots=True)
class Reservation:
    hold: Hold
    quote: Quote
    model: Model
    fair_input_tokens: int  # billed for the prompt if the provider never reports usage
    settlement: Settlement | None = None  # set once: a reservation settles exactly once


async def reserve(gateway: Gateway, principal: Principal, model: Model, request: ir.Request,
                  *, cap: int | None, endpoint: str, request_id: str) -> Reservation:
    """Quote the worst case and reserve it against this environment's credit lease:
    no I/O while the lease covers it (billing/wallet.py).

    The first attempt quotes without knowing the balance. If the balance cannot
    cover it, the account the refusal returns is used to re-quote: lowering
    max tokens to what is spendable, or a 402.
    """
    search_tokens, search_fees = search_bound(model, request)
    input_tokens = estimate_input_tokens(request) + search_tokens
    balance: int | None = None
    over: OverBudget | None = None  # the key's spend limit refused the last attempt
    wallet = gateway.wallet
    now_ms = int(time.time() * 1000)
    budget = Budget.of(principal.key_id, principal.limits.per_day, principal.limits.per_month,
                       now_ms)
    for _ in range(RESERVE_ATTEMPTS):
        try:
            quote = make_quote(model, input_tokens=input_tokens,
                               requested=request.max_output_tokens, cap=cap, balance=balance,
                               fees=search_fees)
        except InsufficientCredits as refused:
            if over is None or refused.code != "insufficient_credits":
                raise
            raise over_budget(over, refused) from None
        hold = Hold(id=request_id, account_id=principal.account_id, amount=quote.amount,
                    model=model.id, endpoint=endpoint, key_id=principal.key_id,
                    created_ms=now_ms, budget=budget)
        lease = wallet.reserve_local(hold)
        if lease is None:
            result = await anyio.to_thread.run_sync(wallet.reserve, hold)
            if isinstance(result, Shortfall):
                if result.account is not None:
                    cap = gateway.remember(result.account).caps.get(model.id)
                over = result.over
                balance = result.spendable if balance is None else min(balance,
                                                                          result.spendable)
                continue
            lease = result
        return Reservation(hold=dataclasses.replace(hold, lease_id=lease.id), quote=quote,
                           model=model,
                           fair_input_tokens=estimate_input_tokens(request, fair=True))
    raise InsufficientCredits("The balance is changing too fast to reserve credits for this "
                              "request; retry it.", code="insufficient_credits")


def over_budget(over: OverBudget, refused: InsufficientCredits) -> InsufficientCredits:
    """The 402 of a call its key's spend limit cannot cover, naming the limit."""
    what = over.budget.describe(over.period)
    return InsufficientCredits(
        f"This key's spend limit of ${format_usd(over.limit)} {what} is reached: "
        f"${format_usd(min(over.used, over.limit))} is spent or held by calls in flight, and "
        f"this request needs more than the ${format_usd(over.room)} left. It resets "
        f"{'at 00:00 UTC' if over.period.startswith('DAY#') else 'on the 1st (UTC)'}; "
        "a higher limit is for the account owner or the operator to set.",
        code="key_budget_exceeded")


async def settle(gateway: Gateway, reservation: Reservation, meter: Meter,
                 outcome: str) -> Settlement:
    """Charge what the meter says and release the rest, once: a second call returns
    the first settlement. Never raises: if the store stays down past its retry
    budget, the charge is kept and retried by this environment's next settle."""
    if reservation.settlement is not None:
        return reservation.settlement
    settlement = reservation.settlement = meter.settlement(
        reservation.model, hold=reservation.hold.amount, outcome=outcome,
        prompt_tokens_estimate=reservation.fair_input_tokens)
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(gateway.wallet.settle, reservation.hold, settlement)
    observability.observe_settlement(  # upstream time ~ since the hold was taken
        reservation.model.id, reservation.hold.endpoint, settlement, settlement.charge,
        int(time.time() * 1000) - reservation.hold.created_ms)
    return settlement


async def enforce_rate_limit(gateway: Gateway, principal: Principal) -> None:
    wait = await anyio.to_thread.run_sync(gateway.store.keys.count_request, principal.key_id,
                                          principal.rpm)
    if wait is not None:
        raise RateLimited(f"This key is limited to {principal.rpm} requests per minute. "
                          f"Retry in {max(1, round(wait))} s.", code="rate_limit_exceeded",
                          retry_after=max(1.0, wait))


async def _model_for(gateway: Gateway, principal: Principal,
                     model_id: str) -> tuple[Model, AccountView]:
    """The caller's model and account view: no I/O and no thread hop when cached."""
    await gateway.ready()  # provider keys resolved off the event loop, once
    if gateway.accounts_cache.get(principal.account_id) is not None:
        model, view = gateway.model_for(principal, model_id)
    else:
        model, view = await anyio.to_thread.run_sync(gateway.model_for, principal, model_id)
    observability.bind(model=model.id)
    return model, view


def _require_credit(view: AccountView, what: str) -> None:
    """A 402 before any work the operator pays for (an upstream count, image
    fetches) when the account has no credit at all."""
    if view.credit is not None and view.credit <= 0:
        raise InsufficientCredits(f"{what} needs credit on the account, and its balance is "
                                  "$0. Add credits to continue.", code="insufficient_credits")


def parse_caller(codec: ModuleType, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T:
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


@dataclass(slots=True, kw_only=True)
class Turn:
    """What a stateful dialect (Responses) adds to a generation.

    `codec_options` reach the caller-side encoder and `render_response` (the
    response id and the request fields a response object echoes); `relay`
    rewrites each relayed passthrough event (the upstream's response id
    becomes ours); `completed` runs once the answer is complete and billed,
    before its terminal event reaches the caller (so the turn is stored by then).
    """

    codec_options: dict[str, Any] = field(default_factory=dict)
    relay: Callable[[sse.ServerSentEvent], sse.ServerSentEvent] | None = None
    completed: Callable[[ir.Response, dict[str, Any] | None], Awaitable[None]] | None = None


async def generate(gateway: Gateway, codec: ModuleType, principal: Principal,
                   body: Any, *, endpoint: str, request_id: str,
                   request: ir.Request | None = None,
                   caller_headers: dict[str, str] | None = None,
                   turn: Turn | None = None,
                   admitted: Callable[[Admission], None] | None = None) -> Outcome:
    """Run one generation. `request` is the already-parsed IR where the dialect
    needs more than the body to parse it (Gemini's model and stream live in the
    URL; a Responses turn carries its stored history). `admitted` is told once the
    hold is reserved, before the upstream call; anything raised before that is the
    caller's or ours, never the upstream's."""
    if request is None:
        request = parse_caller(codec, codec.parse_request, body)
    check_request(request)
    if principal.rpm is not None:
        await enforce_rate_limit(gateway, principal)
    turn = turn or Turn()
    model, view = await _model_for(gateway, principal, request.model)
    if model.kind != "chat":
        raise InvalidRequest(f"{model.id} is an embedding model: call it on /v1/embeddings "
                             "(or Gemini's embedContent).", param="model",
                             code="model_not_supported")
    dropped = fit_hosted_tools(model, request)
    provider = gateway.provider_for(model, dialect=codec.DIALECT,
                                    web_search=request.web_search is not None)
    # A body whose hosted tool is dropped goes through the IR, which leaves it out.
    passthrough = provider.dialect == codec.DIALECT and not dropped
    if not passthrough:
        if hasattr(codec, "check_translatable"):
            codec.check_translatable(body)  # a 400 naming what only the caller's provider has
        if not model.reasoning:
            # Coding CLIs send thinking / effort settings to every model; for a model
            # without reasoning they are hints it cannot take (its API would 400).
            request.reasoning_effort = request.thinking_budget = None
    # The hold must cover what is forwarded: the upstream body itself (for a
    # passthrough, the caller's, patched), every part of it priced or refused.
    probe = Call(request=request, model=model, caller_headers=caller_headers or {})
    if passthrough:
        probe.passthrough_body = codec.patch_request(
            body, model=model.upstream,
            max_tokens=request.max_output_tokens or model.max_output_tokens, stream_usage=True)
        if not model.reasoning:
            probe.passthrough_body = codec.strip_reasoning(probe.passthrough_body)
    _require_credit(view, "This request")  # before any image is fetched for it
    await provider.prepare(probe)  # Gemini: image URLs fetched now, priced by their size
    upstream = provider.upstream_body(probe, stream=request.stream)
    if upstream is not None:
        if passthrough:
            parse_caller(codec, codec.check_forwardable, upstream, model=model,
                         headers=probe.caller_headers)
        request.input_bound = parse_caller(codec, bound_input_tokens, upstream, model)
    requested = request.max_output_tokens
    # A model with fallbacks holds what its dearest deployment could cost.
    reservation = await reserve(gateway, principal, model.worst_case(), request,
                                cap=view.caps.get(model.id), endpoint=endpoint,
                                request_id=request_id)
    try:
        quote = reservation.quote
        request.max_output_tokens = quote.max_output_tokens
        call = Call(request=request, model=model, caller_headers=caller_headers or {})
        if passthrough:
            call.passthrough_body = codec.patch_request(
                body, model=model.upstream, max_tokens=quote.max_output_tokens,
                stream_usage=True)
            if not model.reasoning:
                call.passthrough_body = codec.strip_reasoning(call.passthrough_body)
        headers: dict[str, str] = {}
        if dropped:
            headers["x-afk-dropped-tools"] = ", ".join(dropped)
        if quote.lowered or (requested is None
                             and quote.max_output_tokens < model.max_output_tokens):
            headers["x-afk-max-tokens"] = str(quote.max_output_tokens)
        if admitted is not None:
            admitted(Admission(headers=dict(headers), stream=request.stream))
    except BaseException:
        await settle(gateway, reservation, Meter(), "error")
        raise
    # From here on, _complete and _stream own the hold and always settle it.
    if not request.stream:
        return await _complete(gateway, codec, provider, call, reservation, headers, turn)
    return await _stream(gateway, codec, provider, call, reservation, headers, turn)


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


# Retries happen only before any byte reached the caller (a whole buffered
# call, or the opening of a stream), for failures that say "try again".
RETRY_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.25
RETRY_MAX_DELAY = 8.0  # a longer retry-after goes back to the caller instead


def _retry_delay(error: GatewayError, attempt: int) -> float | None:
    """Seconds to wait before retrying after `error`, or None for no retry."""
    if not error.retryable or attempt + 1 >= RETRY_ATTEMPTS:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= RETRY_MAX_DELAY else None
    return RETRY_BASE_DELAY * 2**attempt * (0.5 + random.random() / 2)


async def _with_retries(call: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return await call()
        except GatewayError as error:
            delay = _retry_delay(error, attempt)
            if delay is None:
                raise
            log.warning("upstream said %s (%s); retry %d in %.2fs", error.status,
                        error.message, attempt + 1, delay)
            await anyio.sleep(delay)
    raise AssertionError("unreachable")


def call_budget(max_call_seconds: float) -> float:
    """Seconds a call may run in a function whose timeout is `max_call_seconds`:
    each function stops its upstream call a margin before its own timeout (20 s,
    or a tenth of a short one) and settles, so a call is billed by the function
    that made it, never left for the sweeper (which meets only crashes)."""
    return max(1.0, max_call_seconds - min(20.0, max(2.0, max_call_seconds / 10)))


def _deadline(gateway: Gateway, reservation: Reservation) -> float:
    """The monotonic time by which the call must be over (settled, answered)."""
    spent = time.time() - reservation.hold.created_ms / 1000
    return time.monotonic() + call_budget(gateway.settings.max_call_seconds) - spent


def _deadline_error(gateway: Gateway) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"The model did not finish within this gateway's time limit "
        f"({call_budget(gateway.settings.max_call_seconds):.0f} s); the call was "
        "stopped and billed for what it used.", code="deadline_exceeded")


def _failure_outcome(error: GatewayError) -> str:
    return "timeout" if isinstance(error, UpstreamTimeout) else "error"


async def _settling_on_failure(gateway: Gateway, reservation: Reservation,
                               upstream_call: Callable[[], Awaitable[T]]) -> T:
    """Make the upstream call (retried where that is safe) within the function's
    deadline; if it fails for good (or the caller goes away), settle the hold
    for what the provider bills of it before the failure propagates."""
    try:
        with anyio.fail_after(max(0.0, _deadline(gateway, reservation) - time.monotonic())):
            return await _with_retries(upstream_call)
    except TimeoutError:
        error = _deadline_error(gateway)
        await settle(gateway, reservation, Meter(), "timeout")
        raise error from None
    except GatewayError as error:
        await settle(gateway, reservation, Meter(usage=error.usage), _failure_outcome(error))
        raise
    except BaseException:
        await settle(gateway, reservation, Meter(), "disconnected")
        raise


def _served_by(deployment: Model, reservation: Reservation, headers: dict[str, str]) -> None:
    """The call is billed at what the deployment that serves it costs; the caller
    is told which one it was."""
    reservation.model = deployment
    headers["x-afk-provider"] = deployment.provider


async def _complete(gateway: Gateway, codec: ModuleType, provider: Any, call: Call,
                    reservation: Reservation, headers: dict[str, str], turn: Turn) -> Outcome:
    completion = await _settling_on_failure(gateway, reservation,
                                            lambda: provider.complete(call))
    _served_by(completion.deployment or call.model, reservation, headers)
    meter = Meter()
    meter.feed_response(completion.response)
    settlement = await settle(gateway, reservation, meter, "ok")
    headers["x-afk-cost"] = format_usd(settlement.charge)
    passthrough = call.passthrough_body is not None and completion.raw is not None
    if turn.completed is not None:
        await turn.completed(completion.response, completion.raw if passthrough else None)
    if passthrough:
        body = completion.raw
        if turn.relay is not None:
            body = json.loads(turn.relay(sse.ServerSentEvent(data=json.dumps(body))).data)
        return Outcome(headers=headers, body=body)
    return Outcome(headers=headers,
                   body=codec.render_response(completion.response, **turn.codec_options))


async def _stream(gateway: Gateway, codec: ModuleType, provider: Any, call: Call,
                  reservation: Reservation, headers: dict[str, str], turn: Turn) -> Outcome:
    upstream = await _settling_on_failure(gateway, reservation,
                                          lambda: provider.open_stream(call))
    _served_by(upstream.deployment or call.model, reservation, headers)
    meter = Meter()
    passthrough = call.passthrough_body is not None
    encoder = codec.StreamEncoder(model=call.model.id, include_usage=call.request.stream_usage,
                                  **turn.codec_options)
    seen: list[ir.StreamEvent] = []

    deadline = _deadline(gateway, reservation)

    async def relay() -> AsyncIterator[list[sse.ServerSentEvent]]:
        settled = False
        outcome = "disconnected"  # until proven otherwise: a cancel lands in `finally`
        frames = upstream.frames.__aiter__()
        try:
            while True:
                # The deadline bounds each wait only (a cancel scope never spans a yield).
                with anyio.move_on_after(deadline - time.monotonic()) as waiting:
                    batch = await anext(frames, None)
                if waiting.cancelled_caught:
                    raise _deadline_error(gateway)
                if batch is None:
                    break
                out: list[sse.ServerSentEvent] = []
                for frame in batch:
                    for event in frame.events:
                        meter.feed(event)
                    if turn.completed is not None:
                        seen.extend(frame.events)
                    if meter.completed and not settled:
                        # Bill (and store the turn) before the terminal event: once the
                        # caller has seen the end of the answer, its ledger entry exists.
                        outcome = "ok"
                        await settle(gateway, reservation, meter, outcome)
                        settled = True
                        if turn.completed is not None:
                            final = getattr(upstream.decoder, "final_response", None) \
                                if passthrough else None
                            await turn.completed(ir.collect(seen), final)
                    if passthrough:
                        if frame.relay and frame.raw is not None:
                            out.append(turn.relay(frame.raw) if turn.relay else frame.raw)
                    else:
                        for event in frame.events:
                            out.extend(encoder.feed(event))
                if out:
                    yield out
            outcome = "ok" if meter.completed else outcome
        except GatewayError as error:
            outcome = _failure_outcome(error)
            if error.usage is not None and meter.usage is None:
                meter.usage = error.usage
            if not settled:
                await settle(gateway, reservation, meter, outcome)
                settled = True
            log.warning("stream failed after it started: %s", error.message)
            # A stateful stream (Responses) frames its error from where it stands:
            # the relayed upstream's position in a passthrough, ours otherwise.
            fail = getattr(upstream.decoder if passthrough else encoder, "fail", None)
            failure = fail(error) if fail else codec.render_stream_error(error)
            yield [turn.relay(out) if turn.relay and passthrough else out for out in failure]
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
                if not settled:
                    await settle(gateway, reservation, meter, outcome)

    return Outcome(headers=headers, stream=relay())


async def count_tokens(gateway: Gateway, codec: ModuleType, principal: Principal,
                       body: Any, request: ir.Request,
                       caller_headers: dict[str, str] | None = None) -> int:
    """The prompt's input tokens: the provider's own count where it has one, else
    the offline estimate. Never bills and never runs a generation, but is not a
    free path: it needs credit on the account (402), and counts against the
    key's rpm and against a per-key counting rpm of its own (429), checked in
    that order, before anything reaches the provider. (Its body size has its own
    limit too, at the route.)"""
    model, view = await _model_for(gateway, principal, request.model)
    _require_credit(view, "Counting tokens")
    if principal.rpm is not None:
        await enforce_rate_limit(gateway, principal)
    limit = gateway.settings.count_tokens_rpm
    if limit:
        wait = await anyio.to_thread.run_sync(gateway.store.keys.count_request,
                                              f"{principal.key_id}#count", limit)
        if wait is not None:
            raise RateLimited(f"This key may count tokens {limit} times a minute. Retry in "
                              f"{max(1, round(wait))} s.", code="rate_limit_exceeded",
                              retry_after=max(1.0, wait))
    provider = gateway.provider(model.provider)
    call = Call(request=request, model=model, caller_headers=caller_headers or {})
    if provider.dialect == codec.DIALECT:
        call.passthrough_body = codec.patch_request(
            body, model=model.upstream, max_tokens=1, stream_usage=False)
    counted = await provider.count_tokens(call)
    return counted if counted is not None else estimate_input_tokens(request, fair=True)
