"""What a passthrough body may carry: the top-level walk every dialect's
`forwarding` module shares. A field is priced (the gateway can quote what it
costs), known but unpriced (refused with why), or unknown (refused: the gateway
cannot price what it does not understand)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from afk.errors import InvalidRequest

Refuse = Callable[..., InvalidRequest]  # (field, why, *, code=...) in the dialect's words
UNKNOWN = "not a field this gateway understands and prices; remove it"


def check_fields(body: Mapping[str, Any], *, priced: frozenset[str],
                 unpriced: Mapping[str, str], refuse: Refuse,
                 allowed: Callable[[str, Any], bool] = lambda name, value: False,
                 name: Callable[[str], str] = str,
                 inside: Callable[[str, str, Any], None] | None = None) -> None:
    """Raise the refusal for the first top-level field of `body` that is neither
    priced nor `allowed` (a field this model prices, or a harmless value); an
    absent (null) field is never refused. `name`: the field's canonical name (the
    lists use it; refusals name the field as the caller spelt it). `inside(name,
    field, value)` checks within each priced field, in the body's order."""
    for field, value in body.items():
        key = name(field)
        if value is None or allowed(key, value):
            continue
        if key in unpriced:
            raise refuse(field, unpriced[key])
        if key not in priced:
            raise refuse(field, UNKNOWN, code="unknown_field")
        if inside is not None:
            inside(key, field, value)
