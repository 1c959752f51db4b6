"""One generation request end to end: the only place that knows the order.

route (auth, parse: wire -> IR) -> checks -> model lookup -> provider -> bound
the upstream body -> reserve -> provider (passthrough or IR) -> meter
-> inbound codec: IR -> wire -> settle (exactly once: success, upstream failure,
timeout or client disconnect; pipeline/reservation.py)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import field
from typing import Any

from afk import ir, sse
from afk.auth import Principal
from afk.billing.prompt import bound_input_tokens
from afk.billing.quote import Quote, estimate_input_tokens
from afk.catalog import Model
from afk.dialects.base import Codec
from afk.errors import InvalidRequest
from afk.gateway import AccountView, Gateway
from afk.money import format_usd
from afk.pipeline.answering import Answering, Outcome, Turn
from afk.pipeline.checks import (
    check_request,
    enforce_count_limit,
    enforce_rate_limit,
    fit_hosted_tools,
    model_for,
    parse_caller,
    require_credit,
)
from afk.pipeline.deadline import Deadline
from afk.pipeline.relay import Relay, close_upstream
from afk.pipeline.reservation import Reservation
from afk.providers import Call, Provider
from afk.records import dataclass


@dataclass(slots=True, kw_only=True)
class Generation:
    """One generation as its route hands it over: the caller's request parsed to
    the IR, and its body as sent (what a passthrough forwards, patched)."""

    request: ir.Request
    body: Any
    endpoint: str
    request_id: str
    caller_headers: dict[str, str] = field(default_factory=dict)
    turn: Turn = field(default_factory=Turn)


@dataclass(slots=True, frozen=True)
class Admission:
    """A call whose hold is reserved, about to wait on its upstream (minutes, for a
    reasoning model): what the HTTP layer needs to start answering before the answer
    exists (to keep the connection alive: http/streaming.py)."""

    headers: dict[str, str]
    stream: bool


@dataclass(slots=True, frozen=True)
class Plan:
    """How a checked request will be served, decided before any money moves."""

    model: Model
    view: AccountView
    provider: Provider
    passthrough: bool  # the caller's body is forwarded (patched), not translated
    dropped: list[str]  # hosted tools the provider cannot serve (x-afk-dropped-tools)


async def generate(gateway: Gateway, codec: Codec, principal: Principal,
                   generation: Generation, *,
                   admitted: Callable[[Admission], None] | None = None) -> Outcome:
    """Run one generation. `admitted` is told once the hold is reserved, before the
    upstream call; anything raised before that is the caller's or ours, never the
    upstream's."""
    plan = await _plan(gateway, codec, principal, generation)
    request, model = generation.request, plan.model
    requested = request.max_output_tokens
    async with AsyncExitStack() as owner:
        # A model with fallbacks holds what its dearest deployment could cost.
        reservation = await owner.enter_async_context(Reservation(
            gateway, principal, model.worst_case(), request,
            cap=plan.view.caps.get(model.id), endpoint=generation.endpoint,
            request_id=generation.request_id))
        quote = reservation.quote
        request.max_output_tokens = quote.max_output_tokens
        answering = Answering(
            codec=codec, reservation=reservation, turn=generation.turn,
            call=_call(codec, generation, model, passthrough=plan.passthrough,
                       max_tokens=quote.max_output_tokens),
            deadline=Deadline(gateway.settings.max_call_seconds, reservation.hold.created_ms),
            headers=_headers(model, quote, requested=requested, dropped=plan.dropped))
        if admitted is not None:
            admitted(Admission(headers=dict(answering.headers), stream=request.stream))
        reservation.calling()
        provider = plan.provider
        if not request.stream:
            return await _complete(answering, provider)
        stream = await answering.deadline.call(lambda: provider.open_stream(answering.call))
        answering.served_by(stream.deployment)
        owner.push_async_callback(close_upstream, stream)
        # From here the stream owns the reservation: it settles however the stream ends.
        return Outcome(headers=answering.headers,
                       stream=Relay(answering, stream, owner.pop_all()))
    raise AssertionError("unreachable")  # the block returns or raises


async def _plan(gateway: Gateway, codec: Codec, principal: Principal,
                generation: Generation) -> Plan:
    """Check the request, pick its model and provider, and bound what will be sent
    upstream (`request.input_bound`): a 4xx for anything wrong, before money moves."""
    request = generation.request
    check_request(request)
    await enforce_rate_limit(gateway, principal)
    model, view = await model_for(gateway, principal, request.model)
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
        codec.check_translatable(generation.body)  # a 400 naming what only its provider has
        if not model.reasoning:
            # Coding CLIs send thinking / effort settings to every model; for a model
            # without reasoning they are hints it cannot take (its API would 400).
            request.reasoning_effort = request.thinking_budget = None
    # The hold must cover what is forwarded: the upstream body itself (for a
    # passthrough, the caller's, patched), every part of it priced or refused.
    probe = _call(codec, generation, model, passthrough=passthrough,
                  max_tokens=request.max_output_tokens or model.max_output_tokens)
    require_credit(view, "This request")  # before any image is fetched for it
    await provider.prepare(probe)  # Gemini: image URLs fetched now, priced by their size
    upstream = provider.upstream_body(probe, stream=request.stream)
    if upstream is not None:
        if passthrough:
            parse_caller(codec, codec.check_forwardable, upstream, model=model,
                         headers=probe.caller_headers)
        request.input_bound = parse_caller(codec, bound_input_tokens, upstream, model)
    return Plan(model=model, view=view, provider=provider, passthrough=passthrough,
                dropped=dropped)


def _call(codec: Codec, generation: Generation, model: Model, *, passthrough: bool,
          max_tokens: int) -> Call:
    """The upstream call; for a passthrough, the caller's body patched for it."""
    call = Call(request=generation.request, model=model,
                caller_headers=generation.caller_headers)
    if passthrough:
        body = codec.patch_request(generation.body, model=model.upstream,
                                   max_tokens=max_tokens, stream_usage=True)
        call.passthrough_body = body if model.reasoning else codec.strip_reasoning(body)
    return call


def _headers(model: Model, quote: Quote, *, requested: int | None,
             dropped: list[str]) -> dict[str, str]:
    """What the caller is told about how its request was fitted."""
    headers: dict[str, str] = {}
    if dropped:
        headers["x-afk-dropped-tools"] = ", ".join(dropped)
    if quote.lowered or (requested is None
                         and quote.max_output_tokens < model.max_output_tokens):
        headers["x-afk-max-tokens"] = str(quote.max_output_tokens)
    return headers


async def _complete(answering: Answering, provider: Provider) -> Outcome:
    """A buffered answer: billed before it is returned."""
    completion = await answering.deadline.call(lambda: provider.complete(answering.call))
    answering.served_by(completion.deployment)
    reservation, turn, headers = answering.reservation, answering.turn, answering.headers
    reservation.meter.feed_response(completion.response)
    settlement = await reservation.settle("ok")
    headers["x-afk-cost"] = format_usd(settlement.charge)
    passthrough = answering.passthrough and completion.raw is not None
    if turn.completed is not None:
        await turn.completed(completion.response, completion.raw if passthrough else None)
    if passthrough:
        body = completion.raw
        if turn.relay is not None:
            body = json.loads(turn.relay(sse.ServerSentEvent(data=json.dumps(body))).data)
        return Outcome(headers=headers, body=body)
    return Outcome(headers=headers, body=answering.codec.render_response(
        completion.response, echo=turn.echo))


async def count_tokens(gateway: Gateway, codec: Codec, principal: Principal,
                       body: Any, request: ir.Request,
                       caller_headers: dict[str, str] | None = None) -> int:
    """The prompt's input tokens: the provider's own count where it has one, else
    the offline estimate. Never bills and never runs a generation, but is not a
    free path: it needs credit on the account (402), and counts against the
    key's rpm and against a per-key counting rpm of its own (429), checked in
    that order, before anything reaches the provider. (Its body size has its own
    limit too, at the route.)"""
    model, view = await model_for(gateway, principal, request.model)
    require_credit(view, "Counting tokens")
    await enforce_rate_limit(gateway, principal)
    await enforce_count_limit(gateway, principal)
    provider = gateway.provider(model.provider)
    call = Call(request=request, model=model, caller_headers=caller_headers or {})
    if provider.dialect == codec.DIALECT:
        call.passthrough_body = codec.patch_request(
            body, model=model.upstream, max_tokens=1, stream_usage=False)
    counted = await provider.count_tokens(call)
    return counted if counted is not None else estimate_input_tokens(request, fair=True)
