"""The boto3 client, the table's schema, and botocore errors made ours."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from afk.errors import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")

RETRY_BUDGET_S = 8.0    # how long one write may keep retrying through contention
RETRY_BASE_S = 0.01
RETRY_CAP_S = 0.4


class Dynamo:
    """A low-level DynamoDB client bound to one table.

    The client is created once per process and reused by every warm
    invocation. Low-level (not the resource API): no float/Decimal guessing,
    and noticeably cheaper per call.
    """

    def __init__(self, table: str, *, endpoint_url: str | None = None,
                 region: str = "us-east-1", client: DynamoDBClient | None = None,
                 retry_budget: float = RETRY_BUDGET_S) -> None:
        self.table = table
        self.retry_budget = retry_budget
        if client is None:
            import boto3
            from botocore.config import Config

            kwargs: dict[str, Any] = {}
            if endpoint_url:
                # A local DynamoDB accepts any credentials; do not require real ones.
                kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")
            client = boto3.session.Session().client(
                "dynamodb", region_name=region, endpoint_url=endpoint_url,
                # The request shapes are ours and tested, so botocore's per-call
                # parameter validation (a measurable share of a request's CPU) is off.
                config=Config(retries={"mode": "standard", "max_attempts": 3},
                              max_pool_connections=64, parameter_validation=False,
                              connect_timeout=3, read_timeout=10, tcp_keepalive=True),
                **kwargs)
        self.client: DynamoDBClient = client

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Throttling, timeouts and service errors become `StoreUnavailable` (503)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            raise StoreUnavailable(f"The account store is unavailable ({code}). Nothing was "
                                   "charged; retry the request.") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("The account store is unreachable. Nothing was charged; "
                                   "retry the request.") from exc


    def retrying(self, call: Callable[[], T], *, budget: float | None = None) -> T:
        """`call()`, retried with full-jitter exponential backoff while DynamoDB says
        it is busy (conflicts, throttles), for at most `budget` seconds. A
        conditional-check failure comes back as the ClientError it is; anything
        else, or contention that outlasts the budget, is `StoreUnavailable`."""
        from botocore.exceptions import ClientError

        deadline = time.monotonic() + (self.retry_budget if budget is None else budget)
        attempt = 0
        while True:
            try:
                with self.errors():
                    return call()
            except StoreUnavailable as exc:
                cause = exc.__cause__
                if not (isinstance(cause, ClientError) and is_contention(cause)):
                    raise
                delay = random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt))
                if time.monotonic() + delay > deadline:
                    raise
                attempt += 1
                time.sleep(delay)
            except ClientError as exc:
                if not is_contention(exc):
                    raise
                delay = random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt))
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable("The account store stayed busy; retry the "
                                           "request.") from exc
                attempt += 1
                time.sleep(delay)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def create_table(client: Any, name: str) -> bool:
    """Create the table if it is missing (local use and tests; on AWS the stack
    owns it). Returns True when it was created."""
    try:
        client.describe_table(TableName=name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("PK", "SK", "GSI1PK", "GSI1SK")],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                   {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "gsi1",
            "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                          {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
        # New items feed the usage aggregator (afk/aggregator.py), as on AWS.
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    client.get_waiter("table_exists").wait(TableName=name,
                                           WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    # TTL only tidies expired items; correctness never relies on it (moto never expires).
    with contextlib.suppress(client.exceptions.ClientError):
        client.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "expires_at"})
    return True


# Attribute-value helpers: the low-level client speaks {"S": ...}/{"N": ...}.
def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


@overload
def get_s(item: dict[str, Any], name: str) -> str | None: ...


@overload
def get_s(item: dict[str, Any], name: str, default: str) -> str: ...


def get_s(item: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = item.get(name)
    return str(value["S"]) if value and "S" in value else default


def get_n(item: dict[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name)
    return int(value["N"]) if value and "N" in value else default


def cancellation_reasons(exc: BaseException) -> list[dict[str, Any]]:
    """The per-item reasons of a cancelled transaction ([] for anything else)."""
    response = getattr(exc, "response", None) or {}
    return list(response.get("CancellationReasons") or [])


# What real DynamoDB answers when it is busy rather than when the request is
# wrong: a write racing a transaction on the same item, a partition over its
# 1,000 WCU / 3,000 RCU a second, a transaction cancelled for either. botocore's
# standard mode retries the throttles (a few times) but not the conflicts.
RETRYABLE_CODES = frozenset({
    "TransactionConflictException", "ProvisionedThroughputExceededException",
    "ThrottlingException", "RequestLimitExceeded", "InternalServerError",
    "ServiceUnavailable", "TransactionInProgressException"})
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError",
                               "ProvisionedThroughputExceeded", "TransactionInProgress"})


def is_contention(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in RETRYABLE_CODES:
        return True
    if code == "TransactionCanceledException":
        codes = {r.get("Code") for r in cancellation_reasons(exc)}
        return bool(codes & RETRYABLE_REASONS) and "ConditionalCheckFailed" not in codes
    return False
