"""What a test asserts of a call's bill, computed from the catalog independently of
the gateway's billing code."""

from __future__ import annotations

from decimal import Decimal

from afk.catalog import Catalog

CATALOG = Catalog.load()


def assert_billed(customer, model: str, calls: int, usage: tuple[int, int]) -> None:
    """`calls` charges of `model`, each `ok` and billed exactly for (input, output)
    tokens at the catalog's prices; the account's books balance."""
    prices = CATALOG.get(model).prices
    charges = customer.charges()
    assert len(charges) == calls >= 1
    for entry in charges:
        assert (entry.model, entry.status) == (model, "ok")
        assert (entry.input_tokens, entry.output_tokens) == usage
        cost = (usage[0] * prices.input + usage[1] * prices.output) / 1_000_000
        assert Decimal(entry.amount) / 10**12 == cost
    customer.assert_books_balance()
