"""The one place configuration is read from the environment.

`Settings.from_env()` is called once per process (see `get_settings`) and
validated there, so a misconfiguration fails at cold start, not mid-request.
Nothing else in the package reads `os.environ`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import field, replace
from functools import lru_cache
from pathlib import Path

from afk.records import dataclass

DEFAULT_TABLE = "afk"
# The setting that holds each provider's API key: an environment variable, and the
# field of the same name in the provider-keys secret (afk.secrets).
KEY_SETTINGS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                "gemini": "GEMINI_API_KEY"}
# The settings a catalog-declared provider may name as its key (afk/endpoints.py):
# environment variables of these names are kept, the rest of the environment is not.
PAYMENT_SECRETS = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
_KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*_(?:API_)?(?:KEY|TOKEN)$")


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a provider lives and the key the gateway uses to call it."""

    base_url: str
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    table: str = DEFAULT_TABLE
    dynamodb_endpoint: str | None = None
    region: str = "us-east-1"
    # Secrets Manager's endpoint where boto3 would take it from the environment
    # (AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL); None: the region's.
    secrets_endpoint: str | None = None
    catalog_path: Path | None = None
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    # Environment variables that may hold a declared provider's key (see `credential`).
    named_keys: Mapping[str, str] = field(default_factory=dict)
    # Self-serve top-ups (afk.payments): Stripe's API (None: api.stripe.com; tests point
    # it at a fake), the amounts a customer may buy at once, and the balance under which
    # the dashboard suggests a top-up. The Stripe keys are `credential`s: the env, else
    # the stack's secret (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET).
    stripe_api_base: str | None = None
    topup_min_usd: str = "5"
    topup_max_usd: str = "500"
    low_balance_usd: str = "1"
    # Amazon Bedrock models are callable: on Lambda (the function's role is granted
    # Bedrock by the template) unless AFK_BEDROCK=0; elsewhere when AFK_BEDROCK=1.
    bedrock: bool = False
    # Seconds a key -> account lookup and an account's caps stay cached in a
    # warm process: a cap change reaches every environment within this long.
    cache_ttl: float = 10.0
    # The longest a call can run in this function (its Lambda timeout): a credit
    # lease is folded in only after its expiry plus this (store/leases.py).
    max_call_seconds: float = 900.0
    lease_seconds: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    # The HTTP(S) proxy settings of the environment ({"http"|"https"|"all"|"no": value},
    # from HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY): an upstream they name a proxy
    # for is called through it (afk/providers/client/proxy.py).
    proxies: Mapping[str, str] = field(default_factory=dict)
    # While a call waits on its upstream, bytes every client ignores go out after
    # this many seconds of silence (0: never): API Gateway cuts a streamed response
    # idle for 5 minutes (Regional), 30 s (edge-optimized, CloudFront). http/streaming.py
    keepalive_seconds: float = 15.0
    # How long a stored Responses-API turn stays retrievable and chainable.
    responses_ttl_days: float = 30.0
    # Stored Responses state: a turn whose input is larger than this is not stored
    # (400 unless the caller says `store: false`); an account keeps at most
    # `responses_quota_bytes` of unexpired turns (store/responses.py).
    responses_max_turn_bytes: int = 1024 * 1024
    responses_quota_bytes: int = 256 * 1024 * 1024
    # Token counting (never billed): per key, at most this many counts a minute
    # (besides the key's own rpm), each body at most this large.
    count_tokens_rpm: int = 60
    count_tokens_max_bytes: int = 2 * 1024 * 1024
    # Image URLs fetched for a provider that takes images only inline (Gemini),
    # per request: at most this many, this many bytes in all, within this many seconds.
    image_fetch_max_images: int = 16
    image_fetch_max_bytes: int = 20 * 1024 * 1024
    image_fetch_seconds: float = 10.0
    # The offline `echo` models of the built-in catalog: on for `afk dev` and tests,
    # off on Lambda (AWS_LAMBDA_FUNCTION_NAME set) unless AFK_ECHO_MODELS=1. A
    # catalog named by AFK_CATALOG is taken as written.
    echo_models: bool = True
    # Deployment (afk.secrets, afk.observability): the Secrets Manager secret holding
    # provider keys absent from the environment; metrics and JSON logs are on when a
    # metrics namespace is set (the template sets one; local runs do not).
    secret_arn: str | None = None
    service: str = "afk"
    metrics_namespace: str | None = None
    log_level: str = "INFO"
    # AFK_TABLE or AFK_DYNAMODB_ENDPOINT was set: `afk admin` then works on that
    # store, never on a running `afk dev`'s (local/devfile.py).
    store_named: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        catalog = env.get("AFK_CATALOG")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        settings = cls(
            table=env.get("AFK_TABLE", DEFAULT_TABLE),
            dynamodb_endpoint=env.get("AFK_DYNAMODB_ENDPOINT") or None,
            region=region,
            secrets_endpoint=(env.get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
                              or env.get("AWS_ENDPOINT_URL") or None),
            catalog_path=Path(catalog) if catalog else None,
            upstreams={
                "openai": Upstream(
                    env.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/"),
                    env.get("OPENAI_API_KEY") or None,
                ),
                "anthropic": Upstream(
                    env.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/"),
                    env.get("ANTHROPIC_API_KEY") or None,
                ),
                "gemini": Upstream(
                    env.get(
                        "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com"
                    ).rstrip("/"),
                    env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or None,
                ),
                # Signed with the function's AWS credentials, not a key (providers/bedrock).
                "bedrock": Upstream((env.get("AFK_BEDROCK_ENDPOINT") or
                                     f"https://bedrock-runtime.{region}.amazonaws.com"
                                     ).rstrip("/")),
            },
            named_keys={k: v for k, v in env.items()
                        if v and (_KEY_NAME.match(k) or k in PAYMENT_SECRETS)},
            stripe_api_base=(env.get("AFK_STRIPE_API_BASE") or "").rstrip("/") or None,
            topup_min_usd=env.get("AFK_TOPUP_MIN_USD") or "5",
            topup_max_usd=env.get("AFK_TOPUP_MAX_USD") or "500",
            low_balance_usd=env.get("AFK_LOW_BALANCE_USD") or "1",
            bedrock=_flag(env, "AFK_BEDROCK", default=bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))),
            cache_ttl=_number(env, "AFK_CACHE_TTL", 10),
            connect_timeout=_number(env, "AFK_CONNECT_TIMEOUT", 10),
            read_timeout=_number(env, "AFK_READ_TIMEOUT", 300),
            proxies=_proxies(env),
            keepalive_seconds=_number(env, "AFK_KEEPALIVE_SECONDS", 15),
            max_call_seconds=_number(env, "AFK_MAX_CALL_SECONDS", 900),
            lease_seconds=_number(env, "AFK_LEASE_SECONDS", 60),
            responses_ttl_days=_number(env, "AFK_RESPONSES_TTL_DAYS", 30, unit="days"),
            responses_max_turn_bytes=_count(env, "AFK_RESPONSES_MAX_TURN_BYTES", 1024 * 1024),
            responses_quota_bytes=_count(env, "AFK_RESPONSES_QUOTA_BYTES", 256 * 1024 * 1024),
            count_tokens_rpm=_count(env, "AFK_COUNT_TOKENS_RPM", 60),
            count_tokens_max_bytes=_count(env, "AFK_COUNT_TOKENS_MAX_BYTES", 2 * 1024 * 1024),
            image_fetch_max_images=_count(env, "AFK_IMAGE_FETCH_MAX_IMAGES", 16),
            image_fetch_max_bytes=_count(env, "AFK_IMAGE_FETCH_MAX_BYTES", 20 * 1024 * 1024),
            image_fetch_seconds=_number(env, "AFK_IMAGE_FETCH_SECONDS", 10),
            echo_models=_flag(env, "AFK_ECHO_MODELS",
                              default=not env.get("AWS_LAMBDA_FUNCTION_NAME")),
            secret_arn=env.get("AFK_SECRET_ARN") or None,
            service=env.get("POWERTOOLS_SERVICE_NAME") or "afk",
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or None,
            log_level=(env.get("AFK_LOG_LEVEL") or "INFO").upper(),
            store_named=bool(env.get("AFK_TABLE") or env.get("AFK_DYNAMODB_ENDPOINT")),
        )
        return settings

    def with_secret(self, values: Mapping[str, str]) -> Settings:
        """These settings with each key absent from the environment taken from
        `values`, the provider-keys secret's fields (afk.secrets.resolve)."""
        upstreams = {name: upstream if upstream.api_key or name not in KEY_SETTINGS
                     else replace(upstream, api_key=values.get(KEY_SETTINGS[name]) or None)
                     for name, upstream in self.upstreams.items()}
        return replace(self, upstreams=upstreams, named_keys={**values, **self.named_keys})

    def credential(self, name: str) -> str | None:
        """The value of the setting `name` (a declared provider's key, a Stripe key):
        the environment variable, else the provider-keys secret's field of that name
        once the secret is resolved (afk.secrets; before that, the environment's)."""
        return self.named_keys.get(name) or None


class SettingsError(ValueError):
    """A setting the environment gives a value it cannot take: the message names the
    variable, what it takes and what it got."""


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise SettingsError(f"{name} must be a whole number (got {value!r})")
    return int(value)


def _number(env: Mapping[str, str], name: str, default: float, *,
            unit: str = "seconds") -> float:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise SettingsError(f"{name} must be a number of {unit}, 0 or more (got {value!r})")
    return number


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise SettingsError(f"{name} must be 1 or 0 (got {value!r})")
    return value in ("1", "true", "yes", "on")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def _proxies(env: Mapping[str, str]) -> dict[str, str]:
    """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY (lower case first, as curl and
    urllib read them): {"http"|"https"|"all"|"no": value}."""
    found = {}
    for key in ("http", "https", "all", "no"):
        value = env.get(f"{key}_proxy") or env.get(f"{key.upper()}_PROXY")
        if value and value.strip():
            found[key] = value.strip()
    return found
