"""What the functions log and measure on Lambda (afk.observability) and where their
provider keys come from (afk.secrets): no key in any log line, JSON logs with the
request's fields, one EMF flush per request, the secret read once per environment,
in a worker thread."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

from afk import observability
from afk.settings import Settings

SECRETS = ["afk-abcdefghijklmnopqrstuvwxyz012345", "sk-proj-ABCDEFGHIJKLMNOP1234",
           "sk-ant-api03-QRSTUVWXYZ987654321", "AIzaSyD-0123456789abcdefghijk",
           "shortsecret42"]


@pytest.mark.parametrize("line", [
    "Authorization: Bearer shortsecret42",
    "headers={'authorization': 'Bearer shortsecret42', 'accept': '*/*'}",
    '{"x-api-key": "shortsecret42"}',
    "[(b'x-goog-api-key', b'shortsecret42'), (b'host', b'example.com')]",
    "HTTP Request: POST https://generativelanguage.googleapis.com/v1beta/models/"
    "gemini-2.5-flash:generateContent?key=shortsecret42 \"HTTP/1.1 200 OK\"",
    "GET /v1beta/models?alt=sse&key=shortsecret42",
    '{"message": "sent {\\"Authorization\\": \\"Bearer shortsecret42\\"}"}',
    "x-goog-api-key=shortsecret42",
    "calling with afk-abcdefghijklmnopqrstuvwxyz012345 and sk-ant-api03-QRSTUVWXYZ987654321",
    "gemini key AIzaSyD-0123456789abcdefghijk",
])
def test_redact_removes_every_key_rendering(line: str) -> None:
    redacted = observability.redact(line)
    assert observability.REDACTED in redacted
    assert not any(secret in redacted for secret in SECRETS), redacted


def test_redact_keeps_what_is_not_a_key() -> None:
    line = "authorization failed for acct_123: missing key (model gpt-4o-mini)"
    assert observability.redact(line) == line


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(observability.RedactingFilter())
    logger = logging.getLogger("afk.test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_log_output_never_carries_a_key(captured) -> None:
    logger, stream = captured
    headers = {"Authorization": "Bearer sk-proj-ABCDEFGHIJKLMNOP1234",
               "x-api-key": "sk-ant-api03-QRSTUVWXYZ987654321"}
    logger.info("upstream headers %s", headers)
    logger.warning("GET %s", "/v1beta/models/x:generateContent?key=AIzaSyD-0123456789abcdefghijk")
    logger.info("caller", extra={"caller_header": "x-goog-api-key: shortsecret42"})
    try:
        raise RuntimeError("bad key afk-abcdefghijklmnopqrstuvwxyz012345")
    except RuntimeError:
        logger.exception("failed with Authorization: Bearer shortsecret42")
    output = stream.getvalue()
    assert output.count(observability.REDACTED) >= 5
    assert "Traceback" in output and "RuntimeError" in output
    assert not any(secret in output for secret in SECRETS), output


@pytest.fixture
def lambda_logging(capsys) -> Iterator[None]:
    """configure() as on Lambda (a metrics namespace set); the root logger restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    observability.configure(replace(Settings.from_env({}), metrics_namespace="afk/test"))
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    observability._telemetry.namespace = None


def test_lambda_logs_are_json_with_the_request_fields(lambda_logging, capsys) -> None:
    log = logging.getLogger("afk.pipeline")
    with observability.request_scope("req_123"):
        observability.bind(account_id="acct_9", model="claude-haiku-4-5")
        log.warning("upstream said no to %s", {"x-api-key": "sk-ant-api03-QRSTUVWXYZ987654321"})
    log.info("outside any request")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    inside, outside = lines
    assert inside["level"] == "WARNING" and inside["service"] == "afk"
    assert (inside["request_id"], inside["account_id"], inside["model"]) == (
        "req_123", "acct_9", "claude-haiku-4-5")
    assert "sk-ant" not in json.dumps(inside) and observability.REDACTED in inside["message"]
    assert "request_id" not in outside


def test_metrics_are_one_emf_line_per_observation(lambda_logging, capsys) -> None:
    class Usage:
        input_tokens, output_tokens = 12, 34

    with observability.request_scope("req_1"):
        observability.observe_settlement("echo", "chat.completions", Usage(), 5_000_000, 250)
        observability.observe_request("/v1/chat/completions", 502)
    settled, request = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert settled["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "afk/test"
    assert (settled["model"], settled["route"]) == ("echo", "chat.completions")
    assert [settled[m] for m in ("InputTokens", "OutputTokens", "CostNanoUSD")] in (
        [12, 34, 5000], [[12.0], [34.0], [5000.0]])
    assert (request["model"], request["route"]) == ("echo", "/v1/chat/completions")
    assert request["Errors"] in (1, [1.0]) and request["ClientErrors"] in (0, [0.0])


def test_metrics_are_off_and_free_when_unconfigured(capsys) -> None:
    observability.observe_request("/v1/models", 200)
    assert capsys.readouterr().out == ""


def test_importing_the_app_does_not_import_powertools() -> None:
    code = ("import sys, afk.http.apps, afk.settings, afk.observability; "
            "print(sorted(m for m in sys.modules if m.startswith(('aws_lambda_powertools', "
            "'afk.secrets'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ provider keys secret
@pytest.fixture(scope="module")
def secrets_endpoint() -> Iterator[str]:
    """Secrets Manager, from moto's own server (every service moto knows): the
    embedded DynamoDB serves DynamoDB and its Streams only. Not mock_aws: starting
    it resets moto's in-process backends, the embedded DynamoDB's included."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def secret_arn(monkeypatch, secrets_endpoint: str) -> Iterator[str]:
    """A provider-keys secret in that server."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_endpoint}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("secretsmanager", region_name="us-east-1",
                          endpoint_url=secrets_endpoint)
    yield client.create_secret(Name=f"afk/provider-keys-{uuid.uuid4().hex}", SecretString=(
        json.dumps({"OPENAI_API_KEY": "sk-from-secret", "ANTHROPIC_API_KEY": "sk-ant-from-secret",
                    "GEMINI_API_KEY": "", "STRIPE_SECRET_KEY": "sk_test_from_secret"})))["ARN"]


def secret_env(arn: str, **more: str) -> dict[str, str]:
    """A function's environment with the provider-keys secret, in the moto server
    (where the `secret_arn` fixture pointed boto3's endpoint variable)."""
    return {"AFK_SECRET_ARN": arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER":
            os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"], **more}


def test_provider_keys_come_from_the_secret_unless_the_environment_has_them(secret_arn):
    from afk.secrets import resolve

    settings = resolve(Settings.from_env(secret_env(secret_arn, OPENAI_API_KEY="sk-env")))
    assert settings.upstreams["openai"].api_key == "sk-env"  # env wins (local runs)
    assert settings.upstreams["anthropic"].api_key == "sk-ant-from-secret"
    assert settings.upstreams["gemini"].api_key is None  # empty in the secret: unset
    assert settings.upstreams["gemini"].base_url == "https://generativelanguage.googleapis.com"
    assert settings.credential("STRIPE_SECRET_KEY") == "sk_test_from_secret"


def test_reading_the_secret_loads_no_aws_sdk(secret_arn):
    """A deployed environment's first call reads the secret: without boto3 (or
    botocore), whose import would cost that call's cold start."""
    script = ("import sys; from afk.secrets import resolve; from afk.settings import Settings; "
              f"s = resolve(Settings.from_env({secret_env(secret_arn)!r})); "
              "print(s.upstreams['anthropic'].api_key, "
              "sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    assert run.stdout.split() == ["sk-ant-from-secret", "[]"], run.stdout + run.stderr


def test_reading_settings_reads_no_secret(secret_arn):
    """Settings are read at cold start with no I/O; the secret comes later, explicitly."""
    settings = Settings.from_env(secret_env(secret_arn))
    assert settings.upstreams["openai"].api_key is None
    assert settings.credential("STRIPE_SECRET_KEY") is None


def test_the_secret_is_read_once_per_environment_off_the_event_loop(secret_arn, monkeypatch):
    import threading

    import anyio

    from afk import secrets
    from afk.gateway import Gateway

    readers: list[threading.Thread] = []
    read = secrets.read_secret

    def recording_read(arn: str, *, region: str, endpoint_url: str | None) -> dict[str, str]:
        readers.append(threading.current_thread())
        return read(arn, region=region, endpoint_url=endpoint_url)

    monkeypatch.setattr(secrets, "read_secret", recording_read)
    gateway = Gateway(Settings.from_env(secret_env(secret_arn)))

    async def two_requests() -> threading.Thread:
        await gateway.ready()
        await gateway.ready()
        return threading.current_thread()

    loop_thread = anyio.run(two_requests)
    assert gateway.provider("openai").api_key == "sk-from-secret"
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(  # same endpoint
        SecretId=secret_arn, SecretString=json.dumps({"ANTHROPIC_API_KEY": "sk-rotated"}))
    assert gateway.provider("anthropic").api_key == "sk-ant-from-secret"  # no second read
    assert len(readers) == 1 and readers[0] is not loop_thread


def test_no_secret_configured_means_no_secret_lookup(monkeypatch) -> None:
    from afk import secrets
    from afk.gateway import Gateway

    monkeypatch.setattr(secrets, "read_secret", lambda *a, **k: pytest.fail("read"))
    gateway = Gateway(Settings.from_env({"OPENAI_API_KEY": "sk-env"}))
    assert gateway.resolve_secret().upstreams["openai"].api_key == "sk-env"


def test_a_provider_empty_in_the_secret_is_refused_naming_the_secret_field(secret_arn):
    """Issue 12: the operator is told which secret field to fill, and the lists leave
    that provider's models out."""
    from afk.errors import ProviderNotConfigured
    from afk.gateway import AccountView, Gateway

    gateway = Gateway(Settings.from_env(secret_env(secret_arn)))
    with pytest.raises(ProviderNotConfigured) as caught:
        gateway.require_credentials(gateway.catalog.get("gemini-2.5-flash"))
    assert "GEMINI_API_KEY field of the gateway's provider-keys secret" in caught.value.message
    listed = gateway.callable_models(AccountView(caps={}, models=None))
    assert {m.provider for m in listed} == {"openai", "anthropic", "echo"}
