"""Provider keys from Secrets Manager: one secret, a JSON object of env-style names.

    {"OPENAI_API_KEY": "sk-...", "ANTHROPIC_API_KEY": "sk-ant-...", "GEMINI_API_KEY": "AIza..."}

The stack creates it with empty values; `aws secretsmanager put-secret-value`
fills it (see README, "Deploy to AWS"). An environment reads it once, when it
first needs a key (`Gateway.ready`, in a worker thread, never on the event
loop), and keeps those keys for its life: a changed secret reaches new
environments (README: how to recycle running ones). It is read with the lean
AWS JSON client (afk/store/awsjson.py), so a deployed environment's first call
does not import boto3 for it.

https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html
"""

from __future__ import annotations

import json

from afk.settings import Settings


def read_secret(secret_arn: str, *, region: str,
                endpoint_url: str | None = None) -> dict[str, str]:
    """The secret's non-empty string values, by field name (one GetSecretValue)."""
    from afk.store.awsjson import LeanSecretsManager

    client = LeanSecretsManager(region, endpoint_url=endpoint_url)
    answer = client.get_secret_value(SecretId=secret_arn)
    value = json.loads(answer["SecretString"])
    if not isinstance(value, dict):
        raise ValueError(f"secret {secret_arn} must hold a JSON object of provider keys")
    return {k: v for k, v in value.items() if isinstance(v, str) and v}


def resolve(settings: Settings) -> Settings:
    """Blocking. `settings` with the keys missing from the environment filled in
    from the provider-keys secret (an environment key wins, for local runs);
    `settings` itself when no secret is configured."""
    if settings.secret_arn is None:
        return settings
    return settings.with_secret(read_secret(settings.secret_arn, region=settings.region,
                                            endpoint_url=settings.secrets_endpoint))
