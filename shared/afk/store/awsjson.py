"""A lean DynamoDB client: AWS's JSON protocol over http.client, signed with SigV4.

Why not boto3: on a Lambda cold start, importing botocore and building its
DynamoDB client (the service model, the endpoint rules, a listing of every
service's data directory) cost more CPU than the rest of the function's first
request together, and each warm call spent ~1 ms in botocore serializing,
signing and parsing what is already JSON (bench/RESULTS.md has the profiles).
DynamoDB's low-level API is one POST per operation, the operation named by
`X-Amz-Target`, the parameters as JSON in exactly the shapes boto3's low-level
client takes (the store builds them already):
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.LowLevelAPI.html
Requests are signed with Signature Version 4:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html

What it keeps of botocore's client, so callers do not change: a method per
operation (`put_item(**params)`), `get_paginator("query"|"scan")`, errors as
botocore's `ClientError` (the same `response` dict: Error.Code/Message,
CancellationReasons, Item), transport failures as botocore's
`EndpointConnectionError`/`ReadTimeoutError` (botocore.exceptions is imported
only when one is raised), the standard retry mode's retries (4 attempts for
DynamoDB: throttles, 5xx and dropped connections; backoff as botocore's), and
`meta.events.register("before-call.dynamodb.*" | "after-call.dynamodb.*", fn)`
for the tests and bench that count calls.

Credentials: the environment's (what Lambda sets), the fixed ones given
(a local endpoint), else botocore's credential chain (a laptop's profiles),
re-read per call so refreshing credentials stay fresh.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from afk.sigv4 import Credentials as Credentials  # re-exported: the store builds them
from afk.sigv4 import Signer
from afk.sigv4 import env_credentials as env_credentials  # re-exported

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_ATTEMPTS = 4  # botocore's standard retry mode, for DynamoDB (retries/standard.py)
# botocore's standard mode: throttling and transient error codes it retries.
RETRY_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "RequestTimeout", "RequestTimeoutException", "InternalServerError",
})
RETRY_STATUSES = frozenset({500, 502, 503, 504})


def _chain_credentials() -> Callable[[], Credentials]:
    """botocore's credential chain (profiles, SSO, instance roles), for use off Lambda,
    resolved at the first call (as boto3 does): none found is botocore's
    NoCredentialsError there, which the store reports as unavailable."""
    resolved: list[Any] = []

    def current() -> Credentials:
        import botocore.session
        from botocore.exceptions import NoCredentialsError

        if not resolved:
            found = botocore.session.get_session().get_credentials()
            if found is None:
                raise NoCredentialsError()
            resolved.append(found)
        frozen = resolved[0].get_frozen_credentials()
        return Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)

    return current


def _encode(value: Any) -> str:
    """JSON's fallback for what it cannot encode: binary attributes go as base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot send {type(value).__name__} to DynamoDB")


def _decode(obj: dict[str, Any]) -> dict[str, Any]:
    """Binary attribute values come back as bytes, as botocore returns them. An
    attribute value is a one-key object; only a "B"/"BS" one holds base64 text."""
    if len(obj) == 1:
        if isinstance(obj.get("B"), str):
            return {"B": base64.b64decode(obj["B"])}
        if isinstance(obj.get("BS"), list):
            return {"BS": [base64.b64decode(v) for v in obj["BS"]]}
    return obj


class _Operation(NamedTuple):
    name: str  # what botocore's OperationModel.name is: "PutItem"


class _Events:
    """botocore's `client.meta.events`, for "before-call"/"after-call" handlers only."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def register(self, event: str, handler: Callable[..., Any]) -> None:
        kind, service, operation = event.split(".", 2)
        if service != "dynamodb" or kind not in ("before-call", "after-call"):
            raise ValueError(f"unsupported event {event!r}")
        self._handlers.setdefault(f"{kind}.{operation}", []).append(handler)

    def emit(self, kind: str, operation: str, **kwargs: Any) -> None:
        for key in (f"{kind}.*", f"{kind}.{operation}"):
            for handler in self._handlers.get(key, ()):
                handler(model=_Operation(operation), **kwargs)


class _Meta:
    def __init__(self, region: str, endpoint_url: str) -> None:
        self.region_name = region
        self.endpoint_url = endpoint_url
        self.events = _Events()


class _Paginator:
    def __init__(self, client: LeanDynamoDB, operation: str) -> None:
        self._client, self._operation = client, operation

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._client.call(self._operation, params)
            yield page
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params = {**params, "ExclusiveStartKey": last}


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


class LeanDynamoDB:
    """DynamoDB's low-level API (see the module docstring). Thread-safe: each
    thread keeps its own kept-alive connection."""

    SERVICE = "dynamodb"  # SigV4's service name, and the endpoint's host prefix
    TARGET_PREFIX = TARGET_PREFIX
    CONTENT_TYPE = CONTENT_TYPE

    def __init__(self, region: str, *, endpoint_url: str | None = None,
                 credentials: Credentials | None = None, connect_timeout: float = 3.0,
                 read_timeout: float = 10.0) -> None:
        self.region = region
        endpoint_url = endpoint_url or f"https://{self.SERVICE}.{region}.amazonaws.com"
        url = urlsplit(endpoint_url)
        self._https = url.scheme == "https"
        self._host = url.netloc
        self._address = (url.hostname or "", url.port or (443 if self._https else 80))
        self._path = url.path or "/"
        fixed = credentials or env_credentials()
        self._credentials: Callable[[], Credentials] = (
            (lambda: fixed) if fixed is not None else _chain_credentials())
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._local = threading.local()
        self._signer = Signer(self.SERVICE, region)
        self.meta = _Meta(region, endpoint_url)

    # ------------------------------------------------------------------ the API
    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        operation = _camel(name)
        return lambda **params: self.call(operation, params)

    def get_paginator(self, name: str) -> _Paginator:
        if name not in ("query", "scan"):
            raise ValueError(f"no paginator for {name!r}")
        return _Paginator(self, _camel(name))

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        events = self.meta.events
        if events._handlers:
            events.emit("before-call", operation, params=params)
        body = json.dumps(params, default=_encode, separators=(",", ":")).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                status, data = self._send(operation, body)
            except (OSError, http.client.HTTPException) as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise _transport_error(self.meta.endpoint_url, exc) from exc
                self._backoff(attempt, throttled=False)
                continue
            parsed = json.loads(data, object_hook=_decode) if data else {}
            if status == 200:
                if events._handlers:
                    events.emit("after-call", operation, parsed=parsed)
                return dict(parsed)
            code = str(parsed.get("__type", "")).rsplit("#", 1)[-1] or str(status)
            if attempt < MAX_ATTEMPTS and (code in RETRY_CODES or status in RETRY_STATUSES):
                self._backoff(attempt, throttled=code in RETRY_CODES)
                continue
            raise _client_error(operation, code, status, parsed)

    # ------------------------------------------------------------------ transport
    def _send(self, operation: str, body: bytes) -> tuple[int, bytes]:
        headers = self._signed(operation, body)
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                return self._exchange(conn, body, headers)
            except TimeoutError:
                raise  # a slow server, not a stale connection: call() decides on retries
            except (OSError, http.client.HTTPException):
                pass  # a kept-alive connection the server closed meanwhile: a new one
        return self._exchange(self._connect(), body, headers)

    def _exchange(self, conn: http.client.HTTPConnection, body: bytes,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        """One request and its whole response; a connection that failed or will
        close is dropped, never reused."""
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            self._local.conn = None
            raise
        if response.will_close:
            conn.close()
            self._local.conn = None
        return response.status, data

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._address
        conn: http.client.HTTPConnection
        if self._https:
            from afk.tls import context

            conn = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout,
                                               context=context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout)
            # http.client sends the headers and the body in two writes: without this,
            # Nagle holds the body until the headers are acknowledged, and a delayed
            # ACK makes that ~40 ms per call (measured: p50 at c=1 went 106 -> 14 ms).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        return conn

    def _backoff(self, attempt: int, *, throttled: bool) -> None:
        """botocore's standard backoff for DynamoDB: rand * min(scale * 2**i, 20 s),
        scale 1 after a throttle, 0.025 after anything else."""
        scale = 1.0 if throttled else 0.025
        time.sleep(random.random() * min(20.0, scale * 2.0 ** (attempt - 1)))

    # ------------------------------------------------------------------ SigV4
    def _signed(self, operation: str, body: bytes) -> dict[str, str]:
        return self._signer.sign("POST", self._path, {
            "content-type": self.CONTENT_TYPE, "host": self._host,
            "x-amz-target": self.TARGET_PREFIX + operation}, body, self._credentials())


class LeanSecretsManager(LeanDynamoDB):
    """Secrets Manager on the same JSON protocol (1.1), for the one GetSecretValue an
    environment makes (afk/secrets.py): a deployed function's first generation call
    would otherwise import boto3 for it. Its endpoint is `Settings.secrets_endpoint`
    (boto3's variables, read once with the other settings).
    https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html"""

    SERVICE = "secretsmanager"
    TARGET_PREFIX = "secretsmanager."
    CONTENT_TYPE = "application/x-amz-json-1.1"


class LeanDynamoDBStreams(LeanDynamoDB):
    """DynamoDB Streams' API (DescribeStream, GetShardIterator, GetRecords) on the same
    protocol, signed as "dynamodb" (its SigV4 signing name), for the usage
    aggregator's poller on a local table (afk/aggregator.py): `afk dev` and the tests
    no longer import boto3 for it. Always given its endpoint (on AWS the stream is
    read by Lambda's event source mapping, not by this).
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Operations_Amazon_DynamoDB_Streams.html"""

    TARGET_PREFIX = "DynamoDBStreams_20120810."


def _client_error(operation: str, code: str, status: int, parsed: dict[str, Any]) -> Exception:
    from botocore.exceptions import ClientError

    response: dict[str, Any] = {k: v for k, v in parsed.items() if k != "__type"}
    response["Error"] = {"Code": code,
                         "Message": str(parsed.get("message") or parsed.get("Message") or "")}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, operation)  # type: ignore[arg-type]


def _transport_error(endpoint: str, exc: BaseException) -> Exception:
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    if isinstance(exc, TimeoutError):
        return ReadTimeoutError(endpoint_url=endpoint)
    return EndpointConnectionError(endpoint_url=endpoint, error=exc)
