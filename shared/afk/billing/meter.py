"""Metering: what a call actually used, and what to charge for it.

The charge policy, one place. What the provider bills is billed:
* ok (completed): the provider's usage, exactly. A provider that reported none
  is billed on an estimate (and the ledger entry says `estimated`).
* error or timeout (the upstream failed or went quiet, or this function's own
  deadline came): the usage the provider reported with the failure, if any
  (it bills it). If output had already flowed, the call is billed like a
  disconnect: the provider generated it and bills it. A failure before any
  output, with no usage reported, costs nothing (a connect timeout never
  reached the provider).
* disconnected (the caller went away): what was generated. The provider's
  usage if it reported any, with output no less than the text already
  produced; else an estimate (prompt + output so far).
* hosted web searches: every search seen to run is billed at its fee, whatever
  the outcome (the provider bills a search it ran, and some report the count
  only at the end of a stream).
* every charge is clipped to the hold, which never exceeds the per-call cap.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from afk import ir
from afk.billing.quote import billed_searches, search_cost, usage_cost
from afk.catalog import Model
from afk.records import dataclass
from afk.store.ledger import Settlement

# How a call ended, as its ledger entry records it (`status`): completed; the
# upstream failed; the upstream or this function's deadline ran out; the caller
# went away.
CallOutcome = Literal["ok", "error", "timeout", "disconnected"]

BYTES_PER_TOKEN_ESTIMATE = 4  # a fair (not conservative) estimate: this one bills


def fair_token_estimate(num_bytes: int) -> int:
    return -(-num_bytes // BYTES_PER_TOKEN_ESTIMATE)


@dataclass(slots=True)
class Meter:
    """Fed every IR stream event (or a whole response); knows what was produced."""

    usage: ir.Usage | None = None
    output_bytes: int = 0
    output_deltas: int = 0
    completed: bool = False
    searches: int = 0  # hosted web searches seen to complete

    def feed(self, event: ir.StreamEvent) -> None:
        match event:
            case ir.UsageUpdate(usage=usage):
                self.usage = usage
            case ir.TextDelta(text=text) | ir.ThinkingDelta(text=text) | ir.RefusalDelta(
                    text=text):
                self.output_bytes += len(text.encode())
                self.output_deltas += 1 if text else 0
            case ir.ToolCallStart(name=name):
                self.output_bytes += len(name.encode())
                self.output_deltas += 1
            case ir.ToolCallDelta(arguments=arguments):
                self.output_bytes += len(arguments.encode())
                self.output_deltas += 1
            case ir.WebSearchDone():
                self.searches += 1
            case ir.StreamEnd():
                self.completed = True

    def feed_response(self, response: ir.Response) -> None:
        self.usage = response.usage
        self.completed = True

    @property
    def estimated_output_tokens(self) -> int:
        # Streams carry at most about one token per delta on OpenAI and more on
        # others; the larger of the two counts is the fairer estimate.
        return max(self.output_deltas, fair_token_estimate(self.output_bytes))

    def settlement(self, model: Model, *, hold: int, outcome: CallOutcome,
                   prompt_tokens_estimate: int) -> Settlement:
        """What the call is charged, ended as `outcome` (the policy above)."""
        usage = self.usage
        estimated = False
        cut = outcome == "disconnected" or (
            outcome in ("error", "timeout") and self.output_deltas > 0)
        if outcome in ("error", "timeout") and not cut:
            usage = usage or ir.Usage()
        elif cut and not self.completed:
            if usage is None:
                usage = ir.Usage(input_tokens=prompt_tokens_estimate,
                                 output_tokens=self.estimated_output_tokens)
                estimated = True
            elif usage.output_tokens < self.estimated_output_tokens:
                usage = dataclasses.replace(usage, output_tokens=self.estimated_output_tokens)
                estimated = True
        elif usage is None:
            usage = ir.Usage(input_tokens=prompt_tokens_estimate,
                             output_tokens=self.estimated_output_tokens)
            estimated = True
        if usage.web_searches < self.searches:
            usage = dataclasses.replace(usage, web_searches=self.searches)
        cost = usage_cost(model, usage)
        return Settlement(
            charge=min(cost, hold), uncovered=max(0, cost - hold),
            provider_cost=usage_cost(model, usage, provider=True),
            input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens, reasoning_tokens=usage.reasoning_tokens,
            status=outcome, estimated=estimated,
            web_searches=billed_searches(model, usage),
            web_search_cost=search_cost(model, usage), provider=model.provider)
