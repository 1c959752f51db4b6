"""afk.money: exact USD amounts, pico-USD integers, canonical strings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afk.money import (
    PICO_PER_USD,
    MoneyError,
    format_usd,
    from_pico,
    parse_usd,
    to_pico,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("0.05", Decimal("0.05")),
    ("10", Decimal(10)),
    ("0.000000000001", Decimal("0.000000000001")),
    (" 1.50 ", Decimal("1.5")),
])
def test_parse_usd_accepts_decimal_strings(text: str, expected: Decimal) -> None:
    assert parse_usd(text) == expected


def test_parse_usd_accepts_ints_and_decimals() -> None:
    assert parse_usd(7) == Decimal(7)
    assert parse_usd(Decimal("0.25")) == Decimal("0.25")


@pytest.mark.parametrize("value", [0.05, 1.0, 0.0, True])
def test_parse_usd_refuses_floats_and_bools(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_usd(value)


@pytest.mark.parametrize("text", [
    "abc", "-1", "-0.01", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf",
    "1e-13", "", "   ", "0.0000000000001", "1.0000000000001",
])
def test_parse_usd_refuses_bad_strings(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_usd(text)


def test_parse_usd_refuses_other_types() -> None:
    with pytest.raises(MoneyError):
        parse_usd(None)
    with pytest.raises(MoneyError):
        parse_usd(["1"])


def test_parse_usd_max_places_is_configurable() -> None:
    assert parse_usd("0.000001", max_places=6) == Decimal("0.000001")
    with pytest.raises(MoneyError, match="6 decimal places"):
        parse_usd("0.0000001", max_places=6)


def test_parse_usd_zero_only_when_allowed() -> None:
    assert parse_usd("0") == 0
    with pytest.raises(MoneyError):
        parse_usd("0", allow_zero=False)
    with pytest.raises(MoneyError):
        parse_usd("0.00", allow_zero=False)


def test_parse_usd_error_names_what() -> None:
    with pytest.raises(MoneyError, match="cap"):
        parse_usd("abc", what="cap")


def test_parse_usd_refuses_huge_amounts() -> None:
    with pytest.raises(MoneyError, match="too large"):
        parse_usd("1000000001")


def test_parse_usd_huge_amount_with_many_places_is_a_money_error() -> None:
    """Bug: the decimal-places check quantizes before the magnitude check, and
    quantizing a 17+ digit amount to 12 places overflows the 28-digit context,
    so decimal.InvalidOperation (not MoneyError) escapes to the caller (the CLI
    prints a traceback instead of an error)."""
    with pytest.raises(MoneyError):
        parse_usd("99999999999999999.0000000000001")


@pytest.mark.parametrize(("usd", "pico"), [
    ("0", 0), ("1", PICO_PER_USD), ("0.000000000001", 1), ("0.05", 50_000_000_000),
    ("123.456789012345", 123_456_789_012_345),
])
def test_to_pico_and_back(usd: str, pico: int) -> None:
    assert to_pico(parse_usd(usd)) == pico
    assert from_pico(pico) == Decimal(usd)


def test_to_pico_refuses_sub_pico_amounts() -> None:
    with pytest.raises(MoneyError):
        to_pico(Decimal("0.0000000000005"))


@pytest.mark.parametrize(("pico", "text"), [
    (0, "0.00"),
    (300_000, "0.0000003"),
    (1, "0.000000000001"),
    (PICO_PER_USD, "1.00"),
    (1_500_000_000_000, "1.50"),
    (5 * PICO_PER_USD, "5.00"),
    (1_234_567_000_000, "1.234567"),
    (10**9 * PICO_PER_USD, "1000000000.00"),
    (-300_000, "-0.0000003"),
])
def test_format_usd(pico: int, text: str) -> None:
    assert format_usd(pico) == text


@given(st.integers(min_value=0, max_value=10**9 * PICO_PER_USD))
def test_format_parse_round_trip_never_exponent(pico: int) -> None:
    text = format_usd(pico)
    assert "e" not in text.lower()
    whole, _, frac = text.partition(".")
    assert whole.isdigit() and frac.isdigit() and 2 <= len(frac) <= 12
    assert to_pico(parse_usd(text)) == pico
    assert to_pico(from_pico(pico)) == pico
