"""afk/pipeline/reservation.py: a call's money settles exactly once, however the
call ends, and the customer's ledger shows what that ending costs.

Every exit path of a generation is driven through `pipeline.generate` with a
scripted provider (in process, no HTTP) on an embedded DynamoDB: the ledger the
customer reads (its charge entries) and what stays held are asserted after each.
Prices: $1 per million input tokens, $2 per million output tokens, so a charge
is `input × 10⁶ + output × 2·10⁶` pico-USD.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import anyio
import pytest

from afk import ir, pipeline, sse
from afk.auth import Principal
from afk.catalog import Catalog, Model, Prices
from afk.dialects import openai_chat
from afk.errors import GatewayError, UpstreamError
from afk.gateway import Gateway
from afk.money import parse_usd, to_pico
from afk.providers import Call, Completion, Frame, UpstreamStream
from afk.settings import Settings
from afk.store import Dynamo, LedgerEntry, Store, create_table

INPUT_PICO, OUTPUT_PICO = 10**6, 2 * 10**6  # per token
MODEL = Model(id="scripted-1", provider="scripted", upstream="scripted-1",
              display_name="Scripted", max_output_tokens=1000, context_window=100_000,
              prices=Prices(input=Decimal(1), cached_input=Decimal("0.5"), output=Decimal(2)))
Hang = object()  # in a script: wait until cancelled


@dataclass
class ScriptedProvider:
    """An upstream that does what the test scripts: a buffered answer (a Completion,
    an error to raise, or `Hang`), or a stream's batches (each a list of IR events,
    an error to raise there, or `Hang`) after an opening that may itself fail."""

    answer: Completion | GatewayError | object = Hang
    opening: GatewayError | None = None
    batches: list[list[ir.StreamEvent] | GatewayError | object] = field(default_factory=list)
    name: str = "scripted"
    dialect: str | None = None
    started: anyio.Event = field(default_factory=anyio.Event)
    closed: bool = False

    async def prepare(self, call: Call) -> None:
        return None

    def upstream_body(self, call: Call, *, stream: bool) -> dict[str, Any] | None:
        return None

    async def count_tokens(self, call: Call) -> int | None:
        return None

    async def complete(self, call: Call) -> Completion:
        self.started.set()
        if self.answer is Hang:
            await anyio.sleep_forever()
        if isinstance(self.answer, GatewayError):
            raise self.answer
        assert isinstance(self.answer, Completion)
        return self.answer

    async def open_stream(self, call: Call) -> UpstreamStream:
        self.started.set()
        if self.opening is not None:
            raise self.opening

        async def frames() -> AsyncIterator[list[Frame]]:
            for batch in self.batches:
                if batch is Hang:
                    await anyio.sleep_forever()
                if isinstance(batch, GatewayError):
                    raise batch
                assert isinstance(batch, list)
                yield [Frame(events=batch)]

        async def close() -> None:
            self.closed = True

        return UpstreamStream(frames=frames(), close=close)


def answer(input_tokens: int, output_tokens: int) -> Completion:
    return Completion(response=ir.Response(
        id="r1", model=MODEL.id, created=0, content=[ir.Text(text="Hello there")],
        stop_reason="stop", usage=ir.Usage(input_tokens=input_tokens,
                                           output_tokens=output_tokens)))


def streamed(*texts: str, usage: ir.Usage | None = None,
             end: bool = True) -> list[list[ir.StreamEvent] | GatewayError | object]:
    batches: list[list[ir.StreamEvent] | GatewayError | object] = [
        [ir.StreamStart(id="s1", model=MODEL.id, created=0)]]
    batches += [[ir.TextDelta(index=0, text=text)] for text in texts]
    if end:
        batches.append(([ir.UsageUpdate(usage=usage)] if usage else [])
                       + [ir.StreamEnd(stop_reason="stop")])
    return batches


@dataclass
class Account:
    gateway: Gateway
    principal: Principal
    store: Store

    def charges(self) -> list[LedgerEntry]:
        return [e for e in self.store.ledger.all_entries(self.principal.account_id)
                if e.type == "charge"]

    def charge(self) -> LedgerEntry:
        """The call's one ledger entry (settled exactly once)."""
        charges = self.charges()
        assert len(charges) == 1, charges
        return charges[0]

    def held(self) -> int:
        return self.gateway.wallet.in_flight(self.principal.account_id)


@pytest.fixture(scope="module")
def store(embedded_dynamodb: str) -> Store:
    name = f"afk-pipeline-{secrets.token_hex(4)}"
    dynamo = Dynamo(name, endpoint_url=embedded_dynamodb)
    create_table(dynamo.client, name)
    return Store(dynamo)


@pytest.fixture
def account(store: Store, embedded_dynamodb: str) -> Callable[..., Account]:
    settings = replace(Settings.from_env({}), dynamodb_endpoint=embedded_dynamodb,
                       max_call_seconds=3.0)  # a call may run 1 s (pipeline/deadline.py)

    def open_with(provider: ScriptedProvider, credits: str = "10") -> Account:
        gateway = Gateway(settings, store=store, catalog=Catalog([MODEL]),
                          providers={"scripted": provider})
        created = store.accounts.create(f"t-{secrets.token_hex(3)}",
                                        credits=to_pico(parse_usd(credits)))
        _, key = store.keys.create(created.id, "test")
        return Account(gateway, Principal(account_id=created.id, key_id=key.key_id), store)

    return open_with


def generation(*, stream: bool = False, turn: pipeline.Turn | None = None
               ) -> pipeline.Generation:
    body = {"model": MODEL.id, "stream": stream,
            "messages": [{"role": "user", "content": "Say hello"}]}
    return pipeline.Generation(request=openai_chat.parse_request(body), body=body,
                               endpoint="chat.completions",
                               request_id=f"req_{secrets.token_hex(6)}",
                               turn=turn or pipeline.Turn())


def run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(coroutine)


async def generate(account: Account, call: pipeline.Generation, **kwargs: Any
                   ) -> pipeline.Outcome:
    return await pipeline.generate(account.gateway, openai_chat, account.principal, call,
                                   **kwargs)


def cost(entry: LedgerEntry) -> int:
    """What the entry's tokens cost at the model's prices."""
    return entry.input_tokens * INPUT_PICO + entry.output_tokens * OUTPUT_PICO


# ------------------------------------------------------------------ buffered calls

def test_a_completed_call_is_charged_its_usage_once(account) -> None:
    customer = account(ScriptedProvider(answer=answer(12, 5)))
    outcome = run(lambda: generate(customer, generation()))
    entry = customer.charge()
    assert (entry.status, entry.input_tokens, entry.output_tokens) == ("ok", 12, 5)
    assert entry.amount == 12 * INPUT_PICO + 5 * OUTPUT_PICO
    assert outcome.headers["x-afk-cost"] == "0.000022"
    assert customer.held() == 0


def test_a_failure_with_reported_usage_is_charged_that_usage(account) -> None:
    failure = UpstreamError("The upstream refused the request.", status=400)
    failure.usage = ir.Usage(input_tokens=7)
    customer = account(ScriptedProvider(answer=failure))
    with pytest.raises(UpstreamError):
        run(lambda: generate(customer, generation()))
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("error", 7 * INPUT_PICO)
    assert customer.held() == 0


def test_a_failure_before_any_output_costs_nothing(account) -> None:
    customer = account(ScriptedProvider(answer=UpstreamError("It broke.", status=400)))
    with pytest.raises(UpstreamError):
        run(lambda: generate(customer, generation()))
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("error", 0)
    assert customer.held() == 0


def test_the_deadline_stops_a_silent_upstream_and_bills_it_as_a_timeout(account) -> None:
    customer = account(ScriptedProvider(answer=Hang))
    with pytest.raises(GatewayError) as raised:
        run(lambda: generate(customer, generation()))
    assert (raised.value.status, raised.value.code) == (504, "deadline_exceeded")
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("timeout", 0)
    assert customer.held() == 0


def test_a_caller_gone_mid_call_is_billed_for_the_prompt_sent(account) -> None:
    provider = ScriptedProvider(answer=Hang)
    customer = account(provider)

    async def leave_mid_call() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, customer, generation())
            await provider.started.wait()
            tasks.cancel_scope.cancel()

    run(leave_mid_call)
    entry = customer.charge()
    assert (entry.status, entry.estimated, entry.output_tokens) == ("disconnected", True, 0)
    assert entry.input_tokens > 0 and entry.amount == cost(entry)
    assert customer.held() == 0


def test_a_failure_before_the_upstream_call_costs_nothing_and_sends_nothing(account) -> None:
    provider = ScriptedProvider(answer=answer(12, 5))
    customer = account(provider)

    def admitted(_: pipeline.Admission) -> None:
        raise RuntimeError("the HTTP layer failed")

    with pytest.raises(RuntimeError):
        run(lambda: generate(customer, generation(), admitted=admitted))
    assert not provider.started.is_set()
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("error", 0)
    assert customer.held() == 0


# ------------------------------------------------------------------ streams

async def read(outcome: pipeline.Outcome, customer: Account,
               stop_after: int | None = None) -> list[tuple[list[sse.ServerSentEvent], int]]:
    """The batches the caller received, each with how many charges the ledger held
    when it arrived; `stop_after` batches, the caller hangs up."""
    assert outcome.stream is not None
    received = []
    async for batch in outcome.stream:
        received.append((batch, len(customer.charges())))
        if stop_after is not None and len(received) == stop_after:
            await outcome.stream.aclose()
            break
    return received


def test_a_stream_is_charged_before_its_end_reaches_the_caller(account) -> None:
    usage = ir.Usage(input_tokens=9, output_tokens=2)
    customer = account(ScriptedProvider(batches=streamed("Hello", " there", usage=usage)))

    async def call() -> list[tuple[list[sse.ServerSentEvent], int]]:
        return await read(await generate(customer, generation(stream=True)), customer)

    received = run(call)
    assert received[0][1] == 0  # nothing charged while the answer flows
    last_batch, charged_by_then = received[-1]
    assert any("finish_reason\":\"stop" in event.data for event in last_batch)
    assert charged_by_then == 1
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("ok", 9 * INPUT_PICO + 2 * OUTPUT_PICO)
    assert customer.held() == 0


def test_a_stream_failing_midway_bills_what_was_generated_before_the_error_event(
        account) -> None:
    provider = ScriptedProvider(batches=[*streamed("Hello", end=False),
                                         UpstreamError("The upstream failed.")])
    customer = account(provider)

    async def call() -> list[tuple[list[sse.ServerSentEvent], int]]:
        return await read(await generate(customer, generation(stream=True)), customer)

    received = run(call)
    error_batch, charged_by_then = received[-1]
    assert "error" in error_batch[0].data and charged_by_then == 1
    entry = customer.charge()
    assert (entry.status, entry.estimated) == ("error", True)
    assert entry.output_tokens > 0 and entry.amount == cost(entry)
    assert provider.closed and customer.held() == 0


def test_a_caller_hanging_up_mid_stream_is_billed_for_what_it_got(account) -> None:
    provider = ScriptedProvider(batches=[*streamed("Hello", end=False), Hang])
    customer = account(provider)

    async def call() -> None:
        await read(await generate(customer, generation(stream=True)), customer, stop_after=2)

    run(call)
    entry = customer.charge()
    assert (entry.status, entry.estimated) == ("disconnected", True)
    assert entry.output_tokens > 0 and entry.amount == cost(entry)
    assert provider.closed and customer.held() == 0


def test_a_stream_closed_before_its_first_byte_is_settled_then(account) -> None:
    """Regression: a stream closed unread (the caller gone between the response's
    start and its first byte) ran no cleanup (an async generator never started has
    none to run): its hold stayed reserved and its upstream open."""
    provider = ScriptedProvider(batches=streamed("Hello", end=False))
    customer = account(provider)

    async def leave_before_reading() -> None:
        outcome = await generate(customer, generation(stream=True))
        assert outcome.stream is not None
        await outcome.stream.aclose()
        assert [batch async for batch in outcome.stream] == []  # closed: nothing more

    run(leave_before_reading)
    entry = customer.charge()
    assert (entry.status, entry.output_tokens) == ("disconnected", 0)
    assert entry.amount == cost(entry) and entry.input_tokens > 0
    assert provider.closed and customer.held() == 0


def test_a_stream_the_upstream_ends_early_is_billed_as_cut_off(account) -> None:
    customer = account(ScriptedProvider(batches=streamed("Hello", end=False)))

    async def call() -> None:
        await read(await generate(customer, generation(stream=True)), customer)

    run(call)
    entry = customer.charge()
    assert (entry.status, entry.estimated) == ("disconnected", True)
    assert entry.output_tokens > 0 and entry.amount == cost(entry)


def test_a_stream_that_cannot_open_is_charged_the_reported_usage(account) -> None:
    refused = UpstreamError("The upstream refused the request.", status=400)
    refused.usage = ir.Usage(input_tokens=4)
    customer = account(ScriptedProvider(opening=refused))
    with pytest.raises(UpstreamError):
        run(lambda: generate(customer, generation(stream=True)))
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("error", 4 * INPUT_PICO)
    assert customer.held() == 0


def test_a_failure_after_the_stream_was_billed_does_not_bill_it_again(account) -> None:
    usage = ir.Usage(input_tokens=9, output_tokens=2)
    customer = account(ScriptedProvider(batches=streamed("Hi", usage=usage)))

    async def store_turn(response: ir.Response, raw: dict[str, Any] | None) -> None:
        raise RuntimeError("storing the turn failed")

    async def call() -> None:
        outcome = await generate(customer, generation(
            stream=True, turn=pipeline.Turn(completed=store_turn)))
        await read(outcome, customer)

    with pytest.raises(RuntimeError):
        run(call)
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("ok", 9 * INPUT_PICO + 2 * OUTPUT_PICO)
    assert customer.held() == 0


# ------------------------------------------------------------------ the object itself

def test_settling_again_or_failing_after_settling_changes_nothing(account) -> None:
    customer = account(ScriptedProvider())
    call = generation()

    async def settle_three_times() -> None:
        async with pipeline.Reservation(
                customer.gateway, customer.principal, MODEL, call.request, cap=None,
                endpoint="chat.completions", request_id=call.request_id) as reservation:
            reservation.calling()
            reservation.meter.feed_response(answer(3, 1).response)
            first = await reservation.settle("ok")
            assert await reservation.settle("error") is first
            raise RuntimeError("after the settlement")

    with pytest.raises(RuntimeError):
        run(settle_three_times)
    entry = customer.charge()
    assert (entry.status, entry.amount) == ("ok", 3 * INPUT_PICO + OUTPUT_PICO)
    assert customer.held() == 0


def test_a_call_the_balance_cannot_cover_is_refused_before_anything_is_held(account) -> None:
    provider = ScriptedProvider(answer=answer(12, 5))
    customer = account(provider, credits="0")
    with pytest.raises(GatewayError) as raised:
        run(lambda: generate(customer, generation()))
    assert (raised.value.status, raised.value.code) == (402, "insufficient_credits")
    assert not provider.started.is_set()
    assert customer.charges() == [] and customer.held() == 0
