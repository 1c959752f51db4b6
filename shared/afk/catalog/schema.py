"""The catalog file (`catalog.yaml`, or the file `AFK_CATALOG` names): its format,
read once per process and validated strictly. A typo in a price must fail at cold
start, not bill a customer wrongly; so every error names the file, the model and
the field, and a field the format does not have (a misspelt optional one would
otherwise be ignored) is refused too.

Validated by hand rather than with pydantic: the generation functions load the
catalog on their cold start, where importing pydantic and building the schema
costs several times what this parse does (docs: /work/notes/pipeline.md).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from afk.catalog.model import (
    Catalog,
    CatalogError,
    ImageRule,
    LongContext,
    Model,
    Prices,
    WebSearchSpec,
)
from afk.endpoints import EndpointError, parse_endpoints
from afk.money import MAX_PRICE_PLACES, MoneyError, parse_usd
from afk.records import dataclass

PROVIDERS = frozenset({"openai", "anthropic", "gemini", "bedrock", "echo"})
MAX_MARKUP_PERCENT = Decimal(10_000)
IMAGE_RULES: dict[str, tuple[str, ...]] = {
    "tiles": ("base", "per_tile"), "patches": ("max_patches", "multiplier"),
    "pixels": ("max_tokens",), "gemini_tiles": (), "fixed": ("max_tokens",),
}

PRICE_FIELDS = ("input", "cached_input", "output", "cache_write", "cache_write_1h",
                "web_search_per_1000")
MODEL_FIELDS = ("id", "provider", "upstream", "display_name", "prices", "customer_prices",
                "max_output_tokens", "context_window", "reasoning", "created", "images",
                "web_search", "kind", "fallbacks")


BUILTIN = Path(__file__).parent.parent / "catalog.yaml"  # by path: importlib.resources ~5 ms
# What a built layer has beside it (layers/afk/Makefile): the same data, as PyYAML reads
# it, in JSON: read in well under a millisecond, without importing PyYAML (~10 ms).
SNAPSHOT = BUILTIN.with_suffix(".json")


def read_catalog(path: Path | None = None) -> Catalog:
    """The catalog the file at `path` describes (None: the built-in one)."""
    if path is None and SNAPSHOT.is_file():
        return catalog_from(json.loads(SNAPSHOT.read_bytes()), "afk/catalog.yaml")
    if path is None:
        return parse_catalog(BUILTIN.read_text("utf-8"), "afk/catalog.yaml")
    return parse_catalog(Path(path).read_text("utf-8"), str(path))


def parse_catalog(text: str, source: str) -> Catalog:
    """The catalog a YAML text describes (`source` names it in errors)."""
    import yaml  # deferred: only paid on the first catalog load

    # libyaml's parser where the wheel has it (every manylinux one): ~10x faster
    # than the pure-Python one, and the catalog is read on every cold start.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return catalog_from(yaml.load(text, Loader=loader), source)  # noqa: S506 - a safe loader


def catalog_from(data: object, source: str) -> Catalog:
    """The catalog `data` (a catalog file as YAML reads it) describes, validated."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(f"{source}: expected a top-level `models:` list")
    _known(data, ("models", "providers", "markup"), source)
    try:
        endpoints = parse_endpoints(data.get("providers"), source, builtin=PROVIDERS)
    except EndpointError as exc:
        raise CatalogError(str(exc)) from None
    providers = PROVIDERS | set(endpoints)
    markup = Markup.parse(data.get("markup"), source, providers)
    catalog = Catalog([markup.apply(_parse_model(entry, source, providers), entry, source)
                       for entry in data["models"]], endpoints)
    markup.check(catalog)
    return catalog


def _close(name: object, choices: Collection[str]) -> list[str]:
    """The choice `name` most likely misspells (difflib: imported for an error only)."""
    import difflib

    return difflib.get_close_matches(str(name), list(choices), n=1)


def _known(entry: Mapping[str, Any], fields: Collection[str], where: str) -> None:
    """Refuse a field the format does not have, suggesting the one meant."""
    for name in entry:
        if name not in fields:
            close = _close(name, fields)
            hint = f" (did you mean {close[0]}?)" if close else \
                f" (expected one of: {', '.join(fields)})"
            raise CatalogError(f"{where}: unknown field {name!r}{hint}")


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
    _known(entry, MODEL_FIELDS, where)
    provider = entry.get("provider")
    if provider not in providers:
        close = _close(provider, sorted(providers))
        raise CatalogError(
            f"{where}: " + ("provider is missing" if provider is None else
                            f"unknown provider {provider!r}")
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; one of {sorted(providers)} (a built-in one, or one declared under "
            "`providers:`)")
    if "prices" not in entry:
        raise CatalogError(f"{where}: prices is missing (input, cached_input and output, "
                           "in USD per million tokens)")
    parsed = _parse_tiered_prices(entry["prices"], where)
    kind = entry.get("kind", "chat")
    if kind not in ("chat", "embedding"):
        raise CatalogError(f"{where}: kind must be chat or embedding")
    if kind == "embedding" and (parsed.output or entry.get("max_output_tokens") is not None):
        raise CatalogError(f"{where}: an embedding model has no output: prices.output "
                           'must be "0" and max_output_tokens absent')
    def positive(name: str) -> int:
        value = entry.get(name)
        if value is None:
            raise CatalogError(f"{where}: {name} is missing (a positive integer)")
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
    """The prices of one tier (`long_context` and `threshold` are its caller's)."""
    _known(prices, (*PRICE_FIELDS, "long_context", "threshold"), f"{where}: prices")

    def price(name: str) -> Decimal:
        if prices.get(name) is None:
            raise CatalogError(f"{where}: prices.{name} is missing (a decimal string of "
                               'USD per million tokens, such as "0.15")')
        return parse_usd(prices.get(name), what=f"prices.{name}", max_places=MAX_PRICE_PLACES)

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
