"""Quotes: the worst-case cost of a call, and the output cap that makes it fit.

worst case = input bound × the highest input-side price + max output tokens × output price

The input bound is the pipeline's, taken over the very body forwarded upstream
(billing/prompt.py: every byte at one token per byte, media by the provider's
own rule, clamped to the context window); a request without one (an offline
model) is estimated from the IR at half a token per byte. The input is priced
at the most an input token can cost (a cache write, where the provider charges
more for those), and at the long-context tier when the bound reaches it, so the
provider's bill for what is sent never exceeds the hold. Any overestimate is
returned at settle time.
"""

from __future__ import annotations

import json

from afk import ir
from afk.catalog import Model
from afk.errors import InsufficientCredits
from afk.money import format_usd
from afk.records import dataclass

PER_MESSAGE_OVERHEAD = 8
PER_REQUEST_OVERHEAD = 8
IMAGE_TOKENS = 1_600  # above the largest single-tile image cost of the catalog's providers


def estimate_input_tokens(request: ir.Request, *, fair: bool = False) -> int:
    """Conservative by default (the quote: must not undershoot): the request's input
    bound when the pipeline set one. With `fair`, the best guess instead (≈4 bytes
    per token): what a caller who hung up before the provider reported usage is
    billed for the prompt."""
    if not fair and request.input_bound is not None:
        return request.input_bound
    size = 0
    images = 0
    for message in request.messages:
        for block in message.content:
            match block:
                case ir.Text(text=text) | ir.Thinking(text=text) | ir.Refusal(text=text):
                    size += len(text.encode())
                case ir.ToolCall(name=name, arguments=arguments):
                    size += len(name) + len(arguments.encode())
                case ir.ToolResult(content=parts):
                    for part in parts:
                        if isinstance(part, ir.Text):
                            size += len(part.text.encode())
                        else:
                            images += 1
                case ir.Image():
                    images += 1
    for tool in request.tools:
        size += len(json.dumps([tool.name, tool.description, tool.parameters]).encode())
    if request.response_format and request.response_format.schema:
        size += len(json.dumps(request.response_format.schema).encode())
    if fair:
        return -(-size // 4) + 4 * len(request.messages) + IMAGE_TOKENS * images
    return (PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD * len(request.messages)
            + (size + 1) // 2 + IMAGE_TOKENS * images)


@dataclass(frozen=True, slots=True)
class Quote:
    input_tokens: int       # estimated
    max_output_tokens: int  # the output cap to send upstream
    amount: int             # pico-USD: the hold
    lowered: bool           # the gateway lowered the caller's (or the default) output cap


def billed_searches(model: Model, usage: ir.Usage) -> int:
    """The searches (or grounded requests) the provider bills for `usage`."""
    spec = model.web_search
    if spec is None or usage.web_searches <= 0:
        return 0
    return min(1, usage.web_searches) if spec.counted == "request" else usage.web_searches


def search_cost(model: Model, usage: ir.Usage, *, provider: bool = False) -> int:
    """Pico-USD of hosted-search fees in `usage` (customer's price, or the provider's)."""
    prices = model.provider_prices if provider else model.prices
    return billed_searches(model, usage) * prices.web_search_pico


def search_bound(model: Model, request: ir.Request) -> tuple[int, int]:
    """The worst case of the request's hosted searches: (input tokens their results
    may add, fees in pico-USD), bounded by `max_uses` (which the gateway sets)."""
    spec = model.web_search
    if request.web_search is None or spec is None:
        return 0, 0
    uses = request.web_search.max_uses or ir.DEFAULT_MAX_SEARCHES
    fees = 1 if spec.counted == "request" else uses
    return uses * spec.content_tokens, fees * model.prices.web_search_pico


def usage_cost(model: Model, usage: ir.Usage, *, provider: bool = False) -> int:
    """Exact cost in pico-USD at the customer's prices (with `provider`, at what the
    provider bills the operator), at the tier the prompt's size selects: cache
    reads at the cached price, cache writes at the cache-write price (one-hour
    writes at theirs; the input price where the catalog has none), the rest at list."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    written_1h = min(usage.cache_write_1h_tokens, written)
    prices = (model.provider_prices if provider else model.prices).tier(usage.input_tokens)
    return ((usage.input_tokens - cached - written) * prices.input_pico
            + cached * prices.cached_input_pico
            + (written - written_1h) * prices.cache_write_pico
            + written_1h * prices.cache_write_1h_pico
            + usage.output_tokens * prices.output_pico
            + search_cost(model, usage, provider=provider))


def make_quote(model: Model, *, input_tokens: int, requested: int | None,
               cap: int | None, balance: int | None, fees: int = 0) -> Quote:
    """The hold for a call, with its output cap fitted to the cap and balance.

    * `cap` (pico-USD per call) lowers the output cap so the worst case fits.
    * `fees` (pico-USD): the worst case of per-call tool fees (hosted searches).
    * `balance` is None on the first attempt (no read on the hot path); when a
      reserve is refused the caller retries with the balance it got back.
      Without an explicit `requested`, the output cap is lowered to what the
      balance affords; with one, an unaffordable request is refused (402).
    """
    prices = model.prices.tier(input_tokens)  # the bound may reach the long-context tier
    in_price, out_price = prices.highest_input_pico, prices.output_pico
    input_cost = input_tokens * in_price + fees
    default = model.max_output_tokens
    tokens = min(requested, default) if requested is not None else default
    lowered = requested is not None and requested > default

    if cap is not None:
        fits = _affordable(cap - input_cost, out_price, tokens)
        if fits < 1:
            raise InsufficientCredits(
                f"The per-call cap of ${format_usd(cap)} for {model.id} cannot cover this "
                f"request: its prompt alone is estimated at {input_tokens} tokens "
                f"(${format_usd(input_cost)}). Raise or clear the cap.",
                code="cap_exceeded")
        if fits < tokens:
            tokens, lowered = fits, True

    if balance is not None:
        affordable = _affordable(balance - input_cost, out_price, tokens)
        if affordable < 1:
            raise InsufficientCredits(
                f"Insufficient credits: the balance of ${format_usd(max(balance, 0))} cannot "
                f"cover this request's prompt (estimated {input_tokens} tokens, "
                f"${format_usd(input_cost)}) and any output. Add credits to continue.",
                code="insufficient_credits")
        if affordable < tokens:
            if requested is not None:
                raise InsufficientCredits(
                    f"Insufficient credits: max tokens {requested} would cost up to "
                    f"${format_usd(input_cost + tokens * out_price)} but the balance of "
                    f"${format_usd(balance)} can afford at most {affordable} output tokens. "
                    f"Lower max tokens to {affordable} or add credits.",
                    code="insufficient_credits")
            tokens, lowered = affordable, True

    return Quote(input_tokens=input_tokens, max_output_tokens=tokens,
                 amount=input_cost + tokens * out_price, lowered=lowered)


def _affordable(budget: int, out_price: int, ceiling: int) -> int:
    if budget < 0:
        return 0
    if out_price == 0:
        return ceiling
    return min(ceiling, budget // out_price)
