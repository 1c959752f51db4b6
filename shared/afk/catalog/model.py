"""What a catalog model is, who serves it, and what it costs (the catalog file's
format and its validation: catalog/schema.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from pathlib import Path

from afk.endpoints import Endpoint
from afk.money import MAX_PRICE_PLACES, to_pico
from afk.records import dataclass

_PRICE_STEP = Decimal(1).scaleb(-MAX_PRICE_PLACES)


class CatalogError(ValueError):
    """A catalog file that cannot be served: the message names the file, the model
    and the field."""


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens.

    `long_context`: the tier a provider bills a whole request at once its prompt
    exceeds `long_context.threshold` input tokens (None: one tier at any size).
    """

    input: Decimal
    cached_input: Decimal
    output: Decimal
    cache_write: Decimal | None = None  # prompt-cache writes, where the provider prices them
    cache_write_1h: Decimal | None = None  # one-hour cache writes (Anthropic `ttl: "1h"`)
    long_context: LongContext | None = None
    # Hosted web search: USD per 1,000 searches (or grounded requests: see
    # WebSearchSpec.counted), on top of the tokens.
    web_search_per_1000: Decimal | None = None

    # One token at a price quoted to 6 places per million is a whole number of
    # pico-USD, so every cost is integer arithmetic.
    @property
    def input_pico(self) -> int:
        return to_pico(self.input) // 10**6

    @property
    def cached_input_pico(self) -> int:
        return to_pico(self.cached_input) // 10**6

    @property
    def output_pico(self) -> int:
        return to_pico(self.output) // 10**6

    @property
    def cache_write_pico(self) -> int:
        return to_pico(self.cache_write if self.cache_write is not None
                       else self.input) // 10**6

    @property
    def cache_write_1h_pico(self) -> int:
        """A one-hour write where the catalog prices none: never below a 5-minute one
        (the dialects refuse the 1h TTL for such a model; this is the backstop)."""
        return to_pico(self.cache_write_1h) // 10**6 if self.cache_write_1h is not None \
            else self.cache_write_pico

    @property
    def web_search_pico(self) -> int:
        """One search's fee (a price to 6 places per 1,000 is whole pico-USD)."""
        return to_pico(self.web_search_per_1000 or Decimal(0)) // 1000

    @property
    def highest_input_pico(self) -> int:
        """The most one input token can cost at this tier: what a quote prices the
        prompt at, since any of it may be billed as a cache write."""
        return max(self.input_pico, self.cache_write_pico, self.cache_write_1h_pico)

    def marked_up(self, percent: Decimal) -> Prices:
        """These prices raised by `percent` (lowered, if negative), each rounded up to
        the pico-USD per token (6 places per million), so every cost stays integer
        arithmetic and a markup never rounds below what the operator asked."""
        def up(price: Decimal) -> Decimal:
            raised = price * (100 + percent) / 100
            return raised.quantize(_PRICE_STEP, rounding=ROUND_CEILING)

        def up_optional(price: Decimal | None) -> Decimal | None:
            return None if price is None else up(price)

        long_context = self.long_context
        if long_context is not None:
            long_context = LongContext(long_context.threshold,
                                       long_context.prices.marked_up(percent))
        return Prices(input=up(self.input), cached_input=up(self.cached_input),
                      output=up(self.output), cache_write=up_optional(self.cache_write),
                      cache_write_1h=up_optional(self.cache_write_1h), long_context=long_context,
                      web_search_per_1000=up_optional(self.web_search_per_1000))

    def ceiling(self, other: Prices) -> Prices:
        """Each price the higher of the two (what a hold covering either must price
        at); a long-context tier from the lower threshold, at the higher tier prices."""
        def hi(a: Decimal | None, b: Decimal | None) -> Decimal | None:
            return a if b is None else b if a is None else max(a, b)

        writes = (None if self.cache_write is None and other.cache_write is None else
                  max(self.cache_write or self.input, other.cache_write or other.input))
        long_context = None
        if self.long_context is not None or other.long_context is not None:
            thresholds = [t.threshold for t in (self.long_context, other.long_context) if t]
            mine = self.long_context.prices if self.long_context else self
            theirs = other.long_context.prices if other.long_context else other
            long_context = LongContext(min(thresholds), replace(
                mine.ceiling(replace(theirs, long_context=None)), long_context=None))
        return Prices(input=max(self.input, other.input),
                      cached_input=max(self.cached_input, other.cached_input),
                      output=max(self.output, other.output), cache_write=writes,
                      cache_write_1h=hi(self.cache_write_1h, other.cache_write_1h),
                      long_context=long_context,
                      web_search_per_1000=hi(self.web_search_per_1000,
                                             other.web_search_per_1000))

    def tier(self, input_tokens: int) -> Prices:
        """The prices a request of `input_tokens` prompt tokens is billed at."""
        if self.long_context is not None and input_tokens > self.long_context.threshold:
            return replace(self.long_context.prices,
                           web_search_per_1000=self.web_search_per_1000)
        return self


@dataclass(frozen=True, slots=True)
class LongContext:
    threshold: int  # prompts of more input tokens than this bill wholly at `prices`
    prices: Prices


@dataclass(frozen=True, slots=True)
class ImageRule:
    """How a model's provider counts one image's input tokens, from its pixel size
    (billing/media.py applies it):

    * `tiles` (OpenAI GPT-4o class): `base + per_tile` × 512-px tiles once the image
      fits 2048 × 2048 and its short side is at most 768 px; `detail: low` is `base`.
    * `patches` (OpenAI mini models): 32-px patches, at most `max_patches` (larger
      images are scaled down), × `multiplier`.
    * `pixels` (Anthropic): 28-px patches (≈ w × h / 750), at most `max_tokens`
      (larger images are scaled down).
    * `gemini_tiles` (Gemini 2.x): 258 tokens for an image within 384 × 384, else
      258 per 768-px tile.
    * `fixed` (Gemini 3 media resolution): at most `max_tokens`, whatever the size.
    """

    kind: str
    base: int = 0
    per_tile: int = 0
    max_patches: int = 0
    multiplier: Decimal = Decimal(1)
    max_tokens: int = 0


@dataclass(frozen=True, slots=True)
class WebSearchSpec:
    """The provider's hosted web search for a model (its fee is in `Prices`).

    * `counted`: what the fee counts: each `search` (Anthropic, OpenAI, Gemini 3),
      or each grounded `request` whatever its number of queries (Gemini 2.x).
    * `content_tokens`: the most input tokens one search adds to the bill (the
      results the model reads), for the quote.
    * `with_functions`: the provider serves search alongside function tools in one
      request (Gemini 2.x does not: the gateway drops search there).
    """

    counted: str
    content_tokens: int
    with_functions: bool = True


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    provider: str
    upstream: str
    display_name: str
    prices: Prices  # what the customer pays: the operator's price (markup or explicit)
    max_output_tokens: int
    context_window: int
    reasoning: bool = False  # accepts a reasoning effort / thinking budget
    created: int = 1_700_000_000
    images: ImageRule | None = None  # None: images (and PDF pages) cannot be priced
    cost: Prices | None = None  # what the provider bills the operator; None: `prices`
    web_search: WebSearchSpec | None = None  # None: the provider has no hosted search
    # "chat" (every generation route) or "embedding" (/v1/embeddings, embedContent):
    # an embedding model is billed on input only, its max_output_tokens is nominal.
    kind: str = "chat"
    # Further deployments of this model, tried in order when the one before fails
    # before answering (afk/failover.py); each a Model of the same id.
    fallbacks: tuple[Model, ...] = ()

    @property
    def owned_by(self) -> str:
        return self.provider

    @property
    def deployments(self) -> tuple[Model, ...]:
        return (self, *self.fallbacks)

    def worst_case(self) -> Model:
        """This model priced at the most any of its deployments can cost, per price:
        what a hold must cover when any of them may serve the call."""
        if not self.fallbacks:
            return self
        prices, cost = self.prices, self.provider_prices
        for fallback in self.fallbacks:
            prices = prices.ceiling(fallback.prices)
            cost = cost.ceiling(fallback.provider_prices)
        return replace(self, prices=prices, cost=cost, fallbacks=())

    @property
    def provider_prices(self) -> Prices:
        return self.cost if self.cost is not None else self.prices

    def priced_at(self, markup_percent: Decimal) -> Model:
        """This model sold at `markup_percent` over the provider's cost."""
        return _marked_up(self, markup_percent)


@lru_cache(maxsize=1024)
def _marked_up(model: Model, percent: Decimal) -> Model:
    return replace(model, prices=model.provider_prices.marked_up(percent),
                   cost=model.provider_prices,
                   fallbacks=tuple(_marked_up(f, percent) for f in model.fallbacks))


class Catalog:
    def __init__(self, models: list[Model],
                 endpoints: dict[str, Endpoint] | None = None) -> None:
        # Upstreams the catalog declares (afk/endpoints.py), by provider name.
        self.endpoints: dict[str, Endpoint] = endpoints or {}
        self._models: dict[str, Model] = {}
        for model in models:
            if model.id in self._models:
                raise CatalogError(f"model {model.id!r} appears twice in the catalog")
            self._models[model.id] = model

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, model_id: str) -> Model | None:
        return self._models.get(model_id)

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """The catalog the file at `path` describes (None: the built-in one). A
        `CatalogError` names the file, the model and the field of what is wrong."""
        from afk.catalog.schema import read_catalog

        return read_catalog(path)

    @classmethod
    def load_text(cls, text: str, source: str) -> Catalog:
        """The catalog a YAML text describes (`source` names it in errors)."""
        from afk.catalog.schema import parse_catalog

        return parse_catalog(text, source)
