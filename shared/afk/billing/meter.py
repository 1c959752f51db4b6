"""Metering: what a call actually used, and what to charge for it.

The charge policy, one place:
* completed: the provider's usage, exactly. A provider that reported none is
  billed on an estimate (and the ledger entry says `estimated`).
* upstream failure (error, timeout, truncated stream): only usage the provider
  reported. A failure of theirs or ours never costs the customer an estimate.
* client disconnect: what was generated. The provider's usage if it reported
  any, with output no less than the text already produced; else an estimate.
* every charge is clipped to the hold, which never exceeds the per-call cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from afk import ir
from afk.billing.quote import usage_cost
from afk.catalog import Model
from afk.store.ledger import Settlement

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

    def settlement(self, model: Model, *, hold: int, outcome: str,
                   prompt_tokens_estimate: int) -> Settlement:
        """`outcome` is ok | error | disconnected."""
        usage = self.usage
        estimated = False
        if outcome == "error":
            usage = usage or ir.Usage()
        elif outcome == "disconnected":
            if usage is None:
                usage = ir.Usage(input_tokens=prompt_tokens_estimate,
                                 output_tokens=self.estimated_output_tokens)
                estimated = True
            elif usage.output_tokens < self.estimated_output_tokens and not self.completed:
                usage = ir.Usage(input_tokens=usage.input_tokens,
                                 cached_input_tokens=usage.cached_input_tokens,
                                 reasoning_tokens=usage.reasoning_tokens,
                                 output_tokens=self.estimated_output_tokens)
                estimated = True
        elif usage is None:
            usage = ir.Usage(input_tokens=prompt_tokens_estimate,
                             output_tokens=self.estimated_output_tokens)
            estimated = True
        cost = usage_cost(model, usage)
        return Settlement(
            charge=min(cost, hold), uncovered=max(0, cost - hold),
            input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens, reasoning_tokens=usage.reasoning_tokens,
            status=outcome, estimated=estimated)
