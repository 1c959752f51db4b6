"""The model catalog: what each model is, who serves it, and what it costs.

Loaded once per process from `catalog.yaml` (or the file named by
`AFK_CATALOG`) and validated strictly: a typo in a price must fail at cold
start, not bill a customer wrongly. Capabilities are data: nothing else in
the package sniffs model names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from afk.billing.money import MAX_PRICE_PLACES, MoneyError, parse_usd, to_pico
from afk.endpoints import Endpoint, EndpointError, parse_endpoints

PROVIDERS = frozenset({"openai", "anthropic", "gemini", "bedrock", "echo"})
_PRICE_STEP = Decimal(1).scaleb(-MAX_PRICE_PLACES)
MAX_MARKUP_PERCENT = Decimal(10_000)


class CatalogError(ValueError):
    pass


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


IMAGE_RULES: dict[str, tuple[str, ...]] = {
    "tiles": ("base", "per_tile"), "patches": ("max_patches", "multiplier"),
    "pixels": ("max_tokens",), "gemini_tiles": (), "fixed": ("max_tokens",),
}


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
        if path is None:
            text = resources.files("afk").joinpath("catalog.yaml").read_text("utf-8")
            source = "afk/catalog.yaml"
        else:
            text = Path(path).read_text("utf-8")
            source = str(path)
        return cls.load_text(text, source)

    @classmethod
    def load_text(cls, text: str, source: str) -> Catalog:
        """The catalog a YAML text describes (`source` names it in errors)."""
        import yaml  # deferred: only paid on the first catalog load

        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise CatalogError(f"{source}: expected a top-level `models:` list")
        try:
            endpoints = parse_endpoints(data.get("providers"), source, builtin=PROVIDERS)
        except EndpointError as exc:
            raise CatalogError(str(exc)) from None
        providers = PROVIDERS | set(endpoints)
        markup = Markup.parse(data.get("markup"), source, providers)
        catalog = cls([markup.apply(_parse_model(entry, source, providers), entry, source)
                       for entry in data["models"]], endpoints)
        markup.check(catalog)
        return catalog


def parse_markup_percent(value: object, where: str) -> Decimal:
    """A markup in percent over the provider's cost: a decimal string (or integer)
    above -100 (a price of zero or less is no price) and at most 10,000."""
    if isinstance(value, bool | float) or not isinstance(value, str | int):
        raise CatalogError(f"{where}: a markup must be a decimal string of percent, "
                           'such as "20"')
    try:
        text = str(value).strip()
        negative = text.startswith("-")
        percent = parse_usd(text.removeprefix("-"), what="markup", max_places=4)
    except MoneyError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    percent = -percent if negative else percent
    if not Decimal(-100) < percent <= MAX_MARKUP_PERCENT:
        raise CatalogError(f"{where}: a markup must be above -100 and at most "
                           f"{MAX_MARKUP_PERCENT} percent")
    return percent


@dataclass(frozen=True, slots=True)
class Markup:
    """The operator's price over the provider's cost, in percent: per model, else per
    provider, else for every model. A model's `customer_prices` (an explicit
    price) wins over any markup."""

    percent: Decimal = Decimal(0)
    providers: dict[str, Decimal] | None = None
    models: dict[str, Decimal] | None = None

    @classmethod
    def parse(cls, value: object, source: str, providers: frozenset[str] = PROVIDERS
              ) -> Markup:
        if value is None:
            return cls()
        where = f"{source}: markup"
        if not isinstance(value, dict) or set(value) - {"percent", "providers", "models"}:
            raise CatalogError(f"{where} must be a mapping of percent, providers, models")
        tables = {}
        for name in ("providers", "models"):
            table = value.get(name) or {}
            if not isinstance(table, dict):
                raise CatalogError(f"{where}.{name} must be a mapping to percents")
            tables[name] = {str(k): parse_markup_percent(v, f"{where}.{name}.{k}")
                            for k, v in table.items()}
        unknown = sorted(set(tables["providers"]) - providers)
        if unknown:
            raise CatalogError(f"{where}.providers: unknown provider {unknown[0]!r}")
        return cls(parse_markup_percent(value.get("percent", "0"), f"{where}.percent"),
                   **tables)

    def apply(self, model: Model, entry: dict[str, Any], source: str) -> Model:
        where = f"{source}: model {model.id!r}"
        explicit = entry.get("customer_prices")
        if explicit is not None:
            # One customer price per model, whichever deployment serves it.
            prices = _parse_customer_prices(explicit, model.prices, where)
            return replace(model, prices=prices, cost=model.prices, fallbacks=tuple(
                replace(f, prices=prices, cost=f.prices) for f in model.fallbacks))
        percent = (self.models or {}).get(model.id)
        if percent is None:
            percent = (self.providers or {}).get(model.provider, self.percent)
        return model.priced_at(percent) if percent else model

    def check(self, catalog: Catalog) -> None:
        unknown = sorted(set(self.models or {}) - {m.id for m in catalog})
        if unknown:
            raise CatalogError(f"markup.models: {unknown[0]!r} is not a catalog model")


def _parse_customer_prices(value: object, cost: Prices, where: str) -> Prices:
    """An explicit price: the same dimensions the provider bills (a cache-write or
    long-context price wherever the cost has one), the tier threshold the provider's."""
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: customer_prices must be a mapping")
    where = f"{where} (customer_prices)"
    prices = _parse_prices(value, where)
    if prices.web_search_per_1000 is None:  # search fees at cost unless priced here
        prices = replace(prices, web_search_per_1000=cost.web_search_per_1000)
    elif cost.web_search_per_1000 is None:
        raise CatalogError(f"{where}: web_search_per_1000 prices a search the model "
                           "does not have")
    for name in ("cache_write", "cache_write_1h"):
        if (getattr(prices, name) is None) != (getattr(cost, name) is None):
            raise CatalogError(f"{where}: {name} must be priced exactly where the "
                               "provider's prices have it")
    tier = value.get("long_context")
    if (tier is None) != (cost.long_context is None):
        raise CatalogError(f"{where}: long_context must be priced exactly where the "
                           "provider's prices have it")
    if tier is not None and cost.long_context is not None:
        if not isinstance(tier, dict):
            raise CatalogError(f"{where}: long_context must be a mapping")
        prices = replace(prices, long_context=LongContext(
            cost.long_context.threshold, _parse_prices(tier, f"{where} (long_context)")))
    return prices


def _parse_model(entry: object, source: str, providers: frozenset[str] = PROVIDERS
                 ) -> Model:
    if not isinstance(entry, dict):
        raise CatalogError(f"{source}: every model must be a mapping")
    model_id = entry.get("id")
    where = f"{source}: model {model_id!r}"
    if not isinstance(model_id, str) or not model_id:
        raise CatalogError(f"{source}: a model has no `id`")
    provider = entry.get("provider")
    if provider not in providers:
        raise CatalogError(f"{where}: provider must be one of {sorted(providers)} (a "
                           "built-in one, or one declared under `providers:`)")
    parsed = _parse_tiered_prices(entry.get("prices") or {}, where)
    kind = entry.get("kind", "chat")
    if kind not in ("chat", "embedding"):
        raise CatalogError(f"{where}: kind must be chat or embedding")
    if kind == "embedding" and (parsed.output or entry.get("max_output_tokens") is not None):
        raise CatalogError(f"{where}: an embedding model has no output: prices.output "
                           'must be "0" and max_output_tokens absent')
    def positive(name: str) -> int:
        value = entry.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CatalogError(f"{where}: {name} must be a positive integer")
        return value

    max_output_tokens = 1 if kind == "embedding" else positive("max_output_tokens")
    context_window = positive("context_window")
    model = Model(
        id=model_id,
        provider=provider,
        upstream=str(entry.get("upstream") or model_id),
        display_name=str(entry.get("display_name") or model_id),
        prices=parsed,
        reasoning=_flag(entry, "reasoning", where),
        created=int(entry.get("created", 1_700_000_000)),
        images=_parse_images(entry.get("images"), where),
        web_search=_parse_web_search(entry.get("web_search"), parsed, where),
        kind=kind,
        max_output_tokens=max_output_tokens,
        context_window=context_window,
    )
    return _with_fallbacks(model, entry.get("fallbacks"), where, providers)


def _parse_tiered_prices(prices: object, where: str) -> Prices:
    if not isinstance(prices, dict):
        raise CatalogError(f"{where}: prices must be a mapping")
    parsed = _parse_prices(prices, where)
    long_context = prices.get("long_context")
    if long_context is not None:
        if not isinstance(long_context, dict):
            raise CatalogError(f"{where}: prices.long_context must be a mapping")
        threshold = long_context.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold <= 0:
            raise CatalogError(f"{where}: prices.long_context.threshold must be a positive "
                               "integer")
        tier = _parse_prices(long_context, f"{where} (long_context)")
        parsed = Prices(**{**_fields(parsed), "long_context": LongContext(threshold, tier)})
    return parsed


def _with_fallbacks(model: Model, value: object, where: str,
                    providers: frozenset[str]) -> Model:
    """`fallbacks:`, a list of {provider, upstream, prices (default: the model's)}:
    the same model served elsewhere, with the model's limits and image rule."""
    if value is None:
        return model
    if not isinstance(value, list) or not value:
        raise CatalogError(f"{where}: fallbacks must be a list of deployments")
    if model.web_search is not None:
        raise CatalogError(f"{where}: a model with hosted web search cannot have fallbacks "
                           "(search is priced per provider)")
    fallbacks = []
    for i, entry in enumerate(value):
        at = f"{where} fallbacks[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"provider", "upstream", "prices"}:
            raise CatalogError(f"{at} must be a mapping of provider, upstream, prices")
        if entry.get("provider") not in providers or not isinstance(entry.get("upstream"), str):
            raise CatalogError(f"{at} needs a provider (one of {sorted(providers)}) and its "
                               "upstream model id")
        prices = model.prices if entry.get("prices") is None else \
            _parse_tiered_prices(entry["prices"], at)
        fallbacks.append(replace(model, provider=entry["provider"],
                                 upstream=entry["upstream"], prices=prices))
    if len({(m.provider, m.upstream) for m in (model, *fallbacks)}) != len(fallbacks) + 1:
        raise CatalogError(f"{where}: a deployment is listed twice")
    return replace(model, fallbacks=tuple(fallbacks))


def _fields(prices: Prices) -> dict[str, Any]:
    return {name: getattr(prices, name) for name in Prices.__slots__}


def _parse_prices(prices: dict[str, Any], where: str) -> Prices:
    def price(name: str) -> Decimal:
        return parse_usd(prices.get(name), what=f"price {name}", max_places=MAX_PRICE_PLACES)

    def optional(name: str) -> Decimal | None:
        return price(name) if prices.get(name) is not None else None

    try:
        return Prices(input=price("input"), cached_input=price("cached_input"),
                      output=price("output"), cache_write=optional("cache_write"),
                      cache_write_1h=optional("cache_write_1h"),
                      web_search_per_1000=optional("web_search_per_1000"))
    except MoneyError as exc:
        raise CatalogError(f"{where}: {exc}") from None


def _parse_web_search(value: object, prices: Prices, where: str) -> WebSearchSpec | None:
    if (value is None) != (prices.web_search_per_1000 is None):
        raise CatalogError(f"{where}: web_search and prices.web_search_per_1000 go together "
                           "(a model's hosted search and its fee)")
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"counted", "content_tokens",
                                                     "with_functions"}:
        raise CatalogError(f"{where}: web_search must be a mapping of counted, "
                           "content_tokens, with_functions")
    counted, tokens = value.get("counted"), value.get("content_tokens")
    if counted not in ("search", "request"):
        raise CatalogError(f"{where}: web_search.counted must be 'search' or 'request'")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise CatalogError(f"{where}: web_search.content_tokens must be an integer >= 0")
    return WebSearchSpec(counted=counted, content_tokens=tokens,
                         with_functions=_flag({"with_functions": value.get(
                             "with_functions", True)}, "with_functions", where))


def _parse_images(value: object, where: str) -> ImageRule | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("rule") not in IMAGE_RULES:
        raise CatalogError(f"{where}: images must be a mapping with a rule, one of "
                           f"{sorted(IMAGE_RULES)}")
    kind = value["rule"]
    fields: dict[str, Any] = {}
    for name in IMAGE_RULES[kind]:
        raw = value.get(name)
        if name == "multiplier":
            try:
                fields[name] = parse_usd(raw, what="images.multiplier", allow_zero=False,
                                         max_places=MAX_PRICE_PLACES)
            except MoneyError as exc:
                raise CatalogError(f"{where}: {exc}") from None
        elif not isinstance(raw, int) or isinstance(raw, bool) or raw <= 0:
            raise CatalogError(f"{where}: images.{name} must be a positive integer "
                               f"(rule {kind})")
        else:
            fields[name] = raw
    unknown = sorted(set(value) - {"rule", *IMAGE_RULES[kind]})
    if unknown:
        raise CatalogError(f"{where}: images.{unknown[0]} is not a setting of rule {kind}")
    return ImageRule(kind=kind, **fields)


def _flag(entry: dict[str, Any], name: str, where: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: {name} must be true or false")
    return value
