"""The DynamoDB client (store/awsjson.py), the table's schema, and its errors made ours."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

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
            from afk.store.awsjson import Credentials, LeanDynamoDB

            # A local DynamoDB accepts any credentials; do not require real ones.
            local = Credentials("local", "local") if endpoint_url else None
            # boto3's low-level interface, which the stubs type (awsjson.py says why lean;
            # it retries as botocore's standard mode does: throttles, 5xx, connections).
            client = cast("DynamoDBClient",
                          LeanDynamoDB(region, endpoint_url=endpoint_url, credentials=local))
        self.client: DynamoDBClient = client

    @contextmanager
    def errors(self) -> Iterator[None]:
        """botocore's errors made ours, here and nowhere else: a refused condition is
        `ConditionFailed`; contention (a transaction conflict, a transaction cancelled for
        one) is `Busy`, what `retrying` retries; any other service error, and a
        throttle or timeout botocore's own retries did not get past, is
        `StoreUnavailable` (503). botocore.exceptions is imported only once something
        failed: a cold start's calls that succeed never load botocore."""
        try:
            yield
        except Exception as exc:
            from botocore.exceptions import BotoCoreError, ClientError

            if isinstance(exc, BotoCoreError):
                raise StoreUnavailable("The account store is unreachable. Nothing was "
                                       "charged; retry the request.") from exc
            if not isinstance(exc, ClientError):
                raise
            code = str(exc.response.get("Error", {}).get("Code", ""))
            response: dict[str, Any] = dict(exc.response)
            reasons: list[dict[str, Any]] = list(response.get("CancellationReasons") or [])
            if is_contention(code, reasons):
                raise Busy(f"The account store is busy ({code}). Nothing was charged; retry "
                           "the request.") from exc
            if code in (CONDITION_FAILED, TRANSACTION_CANCELED):
                item: dict[str, Any] | None = response.get("Item")
                raise ConditionFailed(code, reasons, item) from exc
            raise StoreUnavailable(f"The account store is unavailable ({code}). Nothing was "
                                   "charged; retry the request.") from exc

    def retrying(self, call: Callable[[], T], *, budget: float | None = None) -> T:
        """`call()`, retried with full-jitter exponential backoff while DynamoDB says
        the items are contended (`Busy`), for at most `budget` seconds. The one retry
        layer over botocore's: botocore (standard mode) retries throttles, 5xx and
        connection errors, never transaction conflicts; this retries those only. A
        refused condition comes back as `ConditionFailed`; contention that outlasts the
        budget, or anything else, is `StoreUnavailable`."""
        deadline = time.monotonic() + (self.retry_budget if budget is None else budget)
        attempt = 0
        while True:
            try:
                with self.errors():
                    return call()
            except Busy:
                delay = random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt))
                if time.monotonic() + delay > deadline:
                    raise
                attempt += 1
                time.sleep(delay)


class Busy(StoreUnavailable):
    """The items a write touches are contended (a 503 if it outlasts the retries)."""


class ConditionFailed(Exception):
    """DynamoDB refused a write's condition. `code` is ConditionalCheckFailedException
    (a single write; `item` is the item as it was, when the write asked for it) or
    TransactionCanceledException (`reasons`: one per item of the transaction, in
    order, each {"Code": ..., "Item": ...}; "None" for the items that passed)."""

    def __init__(self, code: str, reasons: list[dict[str, Any]],
                 item: dict[str, Any] | None) -> None:
        super().__init__(code)
        self.code, self.reasons, self.item = code, reasons, item

    @property
    def codes(self) -> list[str | None]:
        return [r.get("Code") for r in self.reasons]


def create_table(client: Any, name: str) -> bool:
    """Create the table if it is missing (local use and tests; on AWS the stack
    owns it). Returns True when it was created."""
    from botocore.exceptions import ClientError

    try:
        client.describe_table(TableName=name)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
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
    for _ in range(50):  # what boto3's table_exists waiter does
        if client.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE":
            break
        time.sleep(0.2)
    # TTL only tidies expired items; correctness never relies on it (moto never expires).
    with contextlib.suppress(ClientError):
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


CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"
# What DynamoDB answers when items are contended rather than when the request is
# wrong: a single write racing a transaction on the same item, or a transaction
# cancelled because an item was in another transaction, or over its partition's
# throughput (API Reference, TransactWriteItems, "CancellationReasons"). botocore's
# standard mode retries neither (botocore/retries/standard.py: not throttling
# codes, and a 400); it does retry a plain write's throttle
# (ProvisionedThroughputExceededException, ThrottlingException), so those are not here.
CONTENTION_CODES = frozenset({"TransactionConflictException"})
CONTENTION_REASONS = frozenset({"TransactionConflict", "ThrottlingError",
                                "ProvisionedThroughputExceeded", "TransactionInProgress"})


def is_contention(code: str, reasons: list[dict[str, Any]]) -> bool:
    if code in CONTENTION_CODES:
        return True
    if code == TRANSACTION_CANCELED:
        codes = {r.get("Code") for r in reasons}
        return bool(codes & CONTENTION_REASONS) and "ConditionalCheckFailed" not in codes
    return False
