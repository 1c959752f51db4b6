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

from afk.billing.money import MAX_PRICE_PLACES, MoneyError, parse_usd, to_pico

PROVIDERS = frozenset({"openai", "anthropic", "gemini", "echo"})


class CatalogError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    cache_write: Decimal | None = None  # prompt-cache writes, where the provider prices them

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
    try:
        parsed = Prices(
            **{
                name: parse_usd(prices.get(name), what=f"price {name}",
                                max_places=MAX_PRICE_PLACES)
                for name in ("input", "cached_input", "output")
            },
            cache_write=parse_usd(prices["cache_write"], what="price cache_write",
                                  max_places=MAX_PRICE_PLACES)
            if prices.get("cache_write") is not None else None,
        )
    except MoneyError as exc:
        raise CatalogError(f"{where}: {exc}") from None
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
        **ints,
    )


def _flag(entry: dict, name: str, where: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}: {name} must be true or false")
    return value
