"""Gemini key spelling: callers mix camelCase and proto snake_case keys at any
depth (google-genai does), so bodies are normalised once on entry."""

from __future__ import annotations

from typing import Any

# Values under these keys are caller data (function arguments and results,
# JSON Schemas, labels): their keys are names and must never be respelled.
_OPAQUE_KEYS = frozenset({"args", "response", "parametersJsonSchema", "responseJsonSchema",
                          "labels", "default", "example"})
# Maps from names to schemas: keep the names, normalise the schemas.
_NAME_MAPS = frozenset({"properties"})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def normalize_keys(value: Any) -> Any:
    """A body with every proto field name in camelCase, caller data untouched."""
    if isinstance(value, list):
        return [normalize_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key)
        if name in _OPAQUE_KEYS:
            out[name] = item
        elif name in _NAME_MAPS and isinstance(item, dict):
            out[name] = {k: normalize_keys(v) for k, v in item.items()}
        else:
            out[name] = normalize_keys(item)
    return out
