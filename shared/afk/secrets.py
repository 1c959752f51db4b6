"""Provider keys from Secrets Manager: one secret, a JSON object of env-style names.

    {"OPENAI_API_KEY": "sk-...", "ANTHROPIC_API_KEY": "sk-ant-...", "GEMINI_API_KEY": "AIza..."}

The stack creates it with empty values; `aws secretsmanager put-secret-value`
fills it (see README, "Deploy to AWS"). It is read when a container builds its
first provider (its first generation), with Powertools' parameters utility,
which caches it for `MAX_AGE_S`: the other providers of that container pay no
second GetSecretValue. A provider keeps its key for the container's life, so a
changed secret reaches new containers (README: how to recycle running ones).
Powertools (and boto3) are imported only here, only when a secret is configured.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from afk.settings import KEY_SETTINGS, Upstream

MAX_AGE_S = 900
SECRET_FIELDS = KEY_SETTINGS  # the secret's fields are named like the env variables


def provider_keys(secret_arn: str, *, max_age: int = MAX_AGE_S) -> dict[str, str]:
    """The secret's non-empty string values, by field name."""
    from aws_lambda_powertools.utilities.parameters import get_secret

    value: Any = get_secret(secret_arn, transform="json", max_age=max_age)
    if not isinstance(value, dict):
        raise ValueError(f"secret {secret_arn} must hold a JSON object of provider keys")
    return {k: v for k, v in value.items() if isinstance(v, str) and v}


class SecretUpstreams(Mapping[str, Upstream]):
    """The upstreams, each key absent from the environment filled in from the
    secret when the upstream is first looked up (when its provider is built)."""

    def __init__(self, upstreams: Mapping[str, Upstream], secret_arn: str) -> None:
        self._upstreams = dict(upstreams)
        self.secret_arn = secret_arn

    def __getitem__(self, name: str) -> Upstream:
        upstream = self._upstreams[name]
        field = SECRET_FIELDS.get(name)
        if upstream.api_key or field is None:
            return upstream
        return replace(upstream, api_key=provider_keys(self.secret_arn).get(field))

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)


def with_secret_keys(upstreams: Mapping[str, Upstream], secret_arn: str) -> SecretUpstreams:
    return SecretUpstreams(upstreams, secret_arn)
