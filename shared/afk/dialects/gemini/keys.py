"""Gemini key spelling: callers mix camelCase and proto snake_case keys at any
depth (google-genai does), so bodies are normalised once on entry.

One field spelt both ways in one object (`candidateCount` next to
`candidate_count`) is ambiguous: which one Gemini honours is not the gateway's
to guess (it checked one value and would forward both), so it is a 400.
"""

from __future__ import annotations

from typing import Any

from afk.errors import InvalidRequest

__all__ = ["normalize_keys"]

# Values under these keys are caller data (function arguments and results,
# JSON Schemas, labels): their keys are names and must never be respelled.
_OPAQUE_KEYS = frozenset({"args", "response", "parametersJsonSchema", "responseJsonSchema",
                          "labels", "default", "example"})
# Maps from names to schemas: keep the names, normalise the schemas.
_NAME_MAPS = frozenset({"properties"})


def camel(key: str) -> str:
    """A proto field name in camelCase (`candidate_count` -> `candidateCount`)."""
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def normalize_keys(value: Any, where: str = "") -> Any:
    """A body with every proto field name in camelCase, caller data untouched; a
    field spelt both ways in one object is refused."""
    if isinstance(value, list):
        return [normalize_keys(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    for key, item in value.items():
        name = camel(key)
        if name in spelt:
            at = f"{where}." if where else ""
            raise InvalidRequest(f"{at}{spelt[name]} and {at}{key} are the same field spelt "
                                 "two ways; send it once.", param=f"{at}{name}")
        spelt[name] = key
        if name in _OPAQUE_KEYS:
            out[name] = item
        elif name in _NAME_MAPS and isinstance(item, dict):
            out[name] = {k: normalize_keys(v, f"{where}.{name}.{k}".lstrip("."))
                         for k, v in item.items()}
        else:
            out[name] = normalize_keys(item, f"{where}.{name}".lstrip("."))
    return out
