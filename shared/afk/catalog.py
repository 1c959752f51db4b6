"""The model catalog: what each model is, who serves it, and what it costs.

Loaded once per process from `catalog.yaml` (or the file named by
`AFK_CATALOG`) and validated strictly: a typo in a price must fail at cold
start, not bill a customer wrongly. Capabilities are data: nothing else in
the package sniffs model names.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from afk.billing.money import MAX_PRICE_PLACES, MoneyError, parse_usd, to_pico

PROVIDERS = frozenset({"openai", "anthropic", "gemini", "echo"})


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
    def highest_input_pico(self) -> int:
        """The most one input token can cost at this tier: what a quote prices the
        prompt at, since any of it may be billed as a cache write."""
        return max(self.input_pico, self.cache_write_pico, self.cache_write_1h_pico)

    def tier(self, input_tokens: int) -> Prices:
        """The prices a request of `input_tokens` prompt tokens is billed at."""
        if self.long_context is not None and input_tokens > self.long_context.threshold:
            return self.long_context.prices
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
    prices: Prices
    max_output_tokens: int
    context_window: int
    reasoning: bool = False  # accepts a reasoning effort / thinking budget
    created: int = 1_700_000_000
    images: ImageRule | None = None  # None: images (and PDF pages) cannot be priced

    @property
    def owned_by(self) -> str:
        return self.provider


class Catalog:
    def __init__(self, models: list[Model]) -> None:
        self._models: dict[str, Model] = {}
        for model in models:
            if model.id in self._models:
                raise CatalogError(f"model {model.id!r} appears twice in the catalog")
            self._models[model.id] = model

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, model_id: str) -> Model | None:
        return self._models.get(model_id)

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        import yaml  # deferred: only paid on the first catalog load

        if path is None:
            text = resources.files("afk").joinpath("catalog.yaml").read_text("utf-8")
            source = "afk/catalog.yaml"
        else:
            text = Path(path).read_text("utf-8")
            source = str(path)
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise CatalogError(f"{source}: expected a top-level `models:` list")
        return cls([_parse_model(entry, source) for entry in data["models"]])


def _parse_model(entry: object, source: str) -> Model:
    if not isinstance(entry, dict):
        raise CatalogError(f"{source}: every model must be a mapping")
    model_id = entry.get("id")
    where = f"{source}: model {model_id!r}"
    if not isinstance(model_id, str) or not model_id:
        raise CatalogError(f"{source}: a model has no `id`")
    provider = entry.get("provider")
    if provider not in PROVIDERS:
        raise CatalogError(f"{where}: provider must be one of {sorted(PROVIDERS)}")
    prices = entry.get("prices") or {}
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
    ints = {}
    for name in ("max_output_tokens", "context_window"):
        value = entry.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CatalogError(f"{where}: {name} must be a positive integer")
        ints[name] = value
    return Model(
        id=model_id,
        provider=provider,
        upstream=str(entry.get("upstream") or model_id),
        display_name=str(entry.get("display_name") or model_id),
        prices=parsed,
        reasoning=_flag(entry, "reasoning", where),
        created=int(entry.get("created", 1_700_000_000)),
        images=_parse_images(entry.get("images"), where),
        **ints,
    )


def _fields(prices: Prices) -> dict[str, Any]:
    return {name: getattr(prices, name) for name in Prices.__slots__}


def _parse_prices(prices: dict[str, Any], where: str) -> Prices:
    def price(name: str) -> Decimal:
        return parse_usd(prices.get(name), what=f"price {name}", max_places=MAX_PRICE_PLACES)

    try:
        return Prices(
            **{name: price(name) for name in ("input", "cached_input", "output")},
            **{name: price(name) if prices.get(name) is not None else None
               for name in ("cache_write", "cache_write_1h")},
        )
    except MoneyError as exc:
        raise CatalogError(f"{where}: {exc}") from None


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


def _flag(entry: dict, name: str, where: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: {name} must be true or false")
    return value
