"""Exact money.

Amounts are `Decimal` USD in code and decimal strings on every API. In the
store they are integers of pico-USD (10⁻¹² USD): exact for any price quoted
to a millionth of a dollar per million tokens (one token at such a price is
one pico-USD), and immune to moto's exponent-form Decimal bug.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

PICO_PER_USD = 10**12
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:nan|inf|infinity)")
PICO = Decimal(1) / PICO_PER_USD
MAX_PRICE_PLACES = 6  # prices per million tokens: one token is then a whole pico-USD


class MoneyError(ValueError):
    """An amount that is not a valid non-negative decimal of at most pico precision."""


def parse_usd(value: object, *, what: str = "amount", allow_zero: bool = True,
              max_places: int = 12) -> Decimal:
    """Parse a caller's decimal-string (or int) USD amount, exactly.

    Floats are refused: `0.1` as a float is not 0.1, and money is never
    allowed to pass through one.
    """
    if isinstance(value, bool | float):
        raise MoneyError(f"{what} must be a decimal string such as \"0.05\", not a float")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise MoneyError(f"{what} is empty")
        if not _DECIMAL.fullmatch(text):
            raise MoneyError(f"{what} {value!r} is not a decimal number")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{what} {value!r} is not a decimal number") from None
    elif isinstance(value, Decimal):
        amount = value
    else:
        raise MoneyError(f"{what} must be a decimal string")
    if not amount.is_finite():
        raise MoneyError(f"{what} {value!r} is not a finite number")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError(f"{what} must be {'zero or ' if allow_zero else ''}greater than zero")
    if amount > Decimal(10) ** 9:
        raise MoneyError(f"{what} {value!r} is too large")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > max_places and amount != amount.quantize(
        Decimal(1).scaleb(-max_places)
    ):
        raise MoneyError(f"{what} {value!r} has more than {max_places} decimal places")
    return amount


def to_pico(amount: Decimal) -> int:
    """USD -> integer pico-USD; refuses anything that would need rounding."""
    pico = amount * PICO_PER_USD
    if pico != pico.to_integral_value():
        raise MoneyError(f"{amount} USD is not a whole number of pico-USD")
    return int(pico)


def from_pico(pico: int) -> Decimal:
    return Decimal(int(pico)) / PICO_PER_USD


def format_usd(pico: int) -> str:
    """Integer pico-USD -> canonical decimal string, no exponent, no trailing zeros
    beyond two places ("1.5" -> "1.50", 3e-7 -> "0.0000003")."""
    sign = "-" if pico < 0 else ""
    whole, frac = divmod(abs(int(pico)), PICO_PER_USD)
    digits = f"{frac:012d}".rstrip("0")
    if len(digits) < 2:
        digits = digits.ljust(2, "0")
    return f"{sign}{whole}.{digits}"
