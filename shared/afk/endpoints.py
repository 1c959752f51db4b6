"""Upstreams an operator declares in the catalog, beside the built-in providers.

    providers:
      deepseek:                     # any OpenAI-compatible Chat Completions server
        api: openai
        base_url: https://api.deepseek.com/v1
        key: DEEPSEEK_API_KEY       # env variable, or field of the provider-keys secret
      ollama:                       # self-hosted, no key
        api: openai
        base_url: http://10.0.0.5:11434/v1
      azure-eastus:                 # Azure OpenAI: a model's `upstream` is its deployment
        api: azure_openai
        endpoint: https://my-resource.openai.azure.com
        api_version: "2024-10-21"
        key: AZURE_OPENAI_API_KEY

A model then names the declared provider (`provider: deepseek`). Both kinds speak
OpenAI Chat Completions, so they reuse the OpenAI codec; only the URL, the auth
header and the name of the output cap differ. `max_tokens_field` says which
name the server takes (OpenAI-compatible servers: `max_tokens` unless told
otherwise; Azure: `max_completion_tokens`, as on OpenAI).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from afk.records import dataclass

KINDS = ("openai", "azure_openai")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_SETTING = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


class EndpointError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A declared upstream: where it is, how it is called, which setting holds its key."""

    name: str
    api: str  # one of KINDS
    base_url: str  # OpenAI-compatible: includes /v1; Azure: the resource endpoint
    key: str | None = None  # the setting (env variable / secret field) holding its key
    api_version: str | None = None  # Azure only
    max_tokens_field: str = "max_tokens"


def parse_endpoints(value: object, source: str, *, builtin: frozenset[str]
                    ) -> dict[str, Endpoint]:
    """The catalog's `providers:` mapping, validated (None: no declared upstreams)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EndpointError(f"{source}: providers must be a mapping of name to settings")
    return {str(name): _parse(str(name), entry, f"{source}: providers.{name}", builtin)
            for name, entry in value.items()}


def _parse(name: str, entry: Any, where: str, builtin: frozenset[str]) -> Endpoint:
    if not _NAME.match(name) or name in builtin:
        raise EndpointError(f"{where}: a declared provider needs a lower-case name of its own "
                            f"(not one of {sorted(builtin)})")
    if not isinstance(entry, dict):
        raise EndpointError(f"{where} must be a mapping")
    api = entry.get("api")
    if api not in KINDS:
        raise EndpointError(f"{where}.api must be one of {list(KINDS)}")
    allowed = {"api", "key", "max_tokens_field"} | (
        {"endpoint", "api_version"} if api == "azure_openai" else {"base_url"})
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise EndpointError(f"{where}: {unknown[0]} is not a setting of an {api} provider "
                            f"(settings: {sorted(allowed)})")
    url_field = "endpoint" if api == "azure_openai" else "base_url"
    url = entry.get(url_field)
    parts = urlsplit(url) if isinstance(url, str) else None
    if not isinstance(url, str) or parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"{where}.{url_field} must be an http(s) URL")
    key = entry.get("key")
    if key is not None and (not isinstance(key, str) or not _SETTING.match(key)):
        raise EndpointError(f"{where}.key must be the name of a setting, such as "
                            "DEEPSEEK_API_KEY (the key itself never goes in the catalog)")
    if api == "azure_openai" and key is None:
        raise EndpointError(f"{where}.key is required: Azure OpenAI takes an api-key")
    version = entry.get("api_version")
    if api == "azure_openai" and (not isinstance(version, str)
                                  or not _API_VERSION.match(version)):
        raise EndpointError(f'{where}.api_version must be an Azure OpenAI API version, such '
                            'as "2024-10-21"')
    field = entry.get("max_tokens_field",
                      "max_completion_tokens" if api == "azure_openai" else "max_tokens")
    if field not in MAX_TOKENS_FIELDS:
        raise EndpointError(f"{where}.max_tokens_field must be one of {list(MAX_TOKENS_FIELDS)}")
    return Endpoint(name=name, api=api, base_url=url.rstrip("/"), key=key,
                    api_version=version, max_tokens_field=field)
