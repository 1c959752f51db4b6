"""afk/billing/meter.py: what a call is charged for each way it can end (the
policy in the module's docstring), as the ledger entry records it.

Prices: $1 per million input tokens, $2 per million output tokens, $10 per
1,000 searches; so a token costs 10⁶ or 2·10⁶ pico-USD and a search 10¹⁰.
"""

from __future__ import annotations

from decimal import Decimal

from afk import ir
from afk.billing.meter import CallOutcome, Meter
from afk.catalog import Model, Prices, WebSearchSpec
from afk.store import Settlement

IN, OUT, SEARCH = 10**6, 2 * 10**6, 10**10
MODEL = Model(id="m", provider="p", upstream="m", display_name="m", max_output_tokens=100,
              context_window=1000,
              prices=Prices(input=Decimal(1), cached_input=Decimal("0.5"), output=Decimal(2),
                            web_search_per_1000=Decimal(10)),
              web_search=WebSearchSpec(counted="search", content_tokens=0))
HOLD = 10**12  # $1: never the limit unless a test says so
PROMPT_ESTIMATE = 50


def streamed(*texts: str, usage: ir.Usage | None = None, end: bool = False) -> Meter:
    meter = Meter()
    for text in texts:
        meter.feed(ir.TextDelta(index=0, text=text))
    if usage is not None:
        meter.feed(ir.UsageUpdate(usage=usage))
    if end:
        meter.feed(ir.StreamEnd(stop_reason="stop"))
    return meter


def settle(meter: Meter, outcome: CallOutcome, hold: int = HOLD) -> Settlement:
    return meter.settlement(MODEL, hold=hold, outcome=outcome,
                            prompt_tokens_estimate=PROMPT_ESTIMATE)


def test_a_completed_call_is_charged_the_providers_usage_exactly() -> None:
    settled = settle(streamed("Hi", usage=ir.Usage(input_tokens=20, output_tokens=3),
                              end=True), "ok")
    assert (settled.charge, settled.estimated, settled.status) == (20 * IN + 3 * OUT, False,
                                                                   "ok")


def test_a_completed_call_without_usage_is_charged_an_estimate_marked_as_such() -> None:
    settled = settle(streamed("Hello", " world", end=True), "ok")
    assert settled.estimated
    # Two deltas, 11 bytes: the larger of the two counts (ceil(11 / 4) = 3 tokens).
    assert (settled.input_tokens, settled.output_tokens) == (PROMPT_ESTIMATE, 3)
    assert settled.charge == PROMPT_ESTIMATE * IN + 3 * OUT


def test_a_failure_before_any_output_without_usage_costs_nothing() -> None:
    outcomes: tuple[CallOutcome, ...] = ("error", "timeout")
    for outcome in outcomes:
        settled = settle(Meter(), outcome)
        assert (settled.charge, settled.status) == (0, outcome)


def test_a_failure_with_reported_usage_is_charged_that_usage() -> None:
    settled = settle(Meter(usage=ir.Usage(input_tokens=7)), "error")
    assert (settled.charge, settled.estimated) == (7 * IN, False)


def test_a_failure_after_output_flowed_is_billed_like_a_disconnect() -> None:
    settled = settle(streamed("Hello"), "error")
    assert settled.estimated
    assert settled.charge == PROMPT_ESTIMATE * IN + 2 * OUT  # "Hello": 5 bytes, 2 tokens


def test_a_disconnect_never_bills_less_output_than_was_produced() -> None:
    usage = ir.Usage(input_tokens=20, output_tokens=1)  # an early usage report
    settled = settle(streamed("a b c d e f g h", " i j k l", usage=usage), "disconnected")
    assert settled.estimated and settled.output_tokens == 6  # 23 bytes, 2 deltas
    assert settled.charge == 20 * IN + 6 * OUT


def test_a_search_seen_to_run_is_billed_whatever_the_outcome() -> None:
    outcomes: tuple[CallOutcome, ...] = ("ok", "error", "disconnected")
    for outcome in outcomes:
        meter = Meter(usage=ir.Usage(input_tokens=10))
        meter.feed(ir.WebSearchDone(index=0, call=ir.WebSearchCall(id="ws1", query="q")))
        settled = settle(meter, outcome)
        assert (settled.web_searches, settled.web_search_cost) == (1, SEARCH), outcome
        assert settled.charge >= SEARCH


def test_the_charge_never_exceeds_the_hold_and_the_rest_is_reported_uncovered() -> None:
    usage = ir.Usage(input_tokens=1000, output_tokens=100)
    settled = settle(Meter(usage=usage), "ok", hold=5 * 10**8)
    assert settled.charge == 5 * 10**8
    assert settled.uncovered == 1000 * IN + 100 * OUT - 5 * 10**8
