"""The DynamoDB-semantics proxy answers as DynamoDB would: conflicts, throttles,
costs and errors in the shapes botocore parses, with moto behind it.

Overlaps are made with long latencies (half a second) and started once the
first call is known to be in flight, so no assertion depends on tight timing.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from afk.store import Dynamo, create_table
from tests.fakes.dynamodb_semantics import DynamoDBSemantics, item_size
from tests.support.paths import ROOT

TABLE = "afk-semantics"
KB = 1024
SIGNED = ("AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, "
          "SignedHeaders=host;x-amz-target, Signature=0")  # what an SDK sends (unchecked)


@pytest.fixture(scope="module")
def backend(embedded_dynamodb: str) -> str:
    create_table(Dynamo(TABLE, endpoint_url=embedded_dynamodb).client, TABLE)
    return embedded_dynamodb


def client(endpoint: str, attempts: int = 4) -> Any:
    """A low-level client in botocore's standard retry mode, as the gateway's
    (whose `max_attempts: 3` means 3 retries: 4 attempts)."""
    return boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id="local", aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts},
                      max_pool_connections=16))


def key(pk: str, sk: str = "ITEM") -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def fresh_pk() -> str:
    return f"P#{uuid.uuid4().hex[:12]}"


def increment(pk: str) -> dict[str, Any]:
    return {"Update": {"TableName": TABLE, "Key": key(pk),
                       "UpdateExpression": "ADD n :one",
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}}


def code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def in_background(proxy: DynamoDBSemantics, op: str, call: Callable[[], Any]) -> Callable[[], Any]:
    """Start `call` in a thread, return once the proxy has received it (plus a
    margin far below the latencies used), and hand back a join returning its
    result or exception."""
    before = proxy.counters().calls.get(op, 0)
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while proxy.counters().calls.get(op, 0) == before and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)

    def join() -> Any:
        thread.join(10)
        return outcome[0]

    return join


@pytest.fixture
def slow_transactions(backend: str) -> Iterator[DynamoDBSemantics]:
    with DynamoDBSemantics(backend, single_latency=0, transaction_latency=0.5) as proxy:
        yield proxy


def test_two_overlapping_transactions_on_one_item_cancel_exactly_the_second(
        slow_transactions: DynamoDBSemantics):
    proxy, db = slow_transactions, client(slow_transactions.endpoint)
    shared, other = fresh_pk(), fresh_pk()
    db.put_item(TableName=TABLE, Item=key(shared))  # also learns the table's schema

    first = in_background(proxy, "TransactWriteItems",
                          lambda: db.transact_write_items(TransactItems=[increment(shared)]))
    with pytest.raises(ClientError) as second:
        db.transact_write_items(TransactItems=[increment(other), increment(shared)])
    assert "ResponseMetadata" in first()

    assert code(second.value) == "TransactionCanceledException"
    assert second.value.response["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item."}]
    assert "[None, TransactionConflict]" in second.value.response["Error"]["Message"]
    item = db.get_item(TableName=TABLE, Key=key(shared), ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "1"}
    assert "Item" not in db.get_item(TableName=TABLE, Key=key(other))
    counters = proxy.counters()
    assert counters.cancellations == {"TransactionConflict": 1}
    assert counters.calls["TransactWriteItems"] == 2  # a cancellation is not retried


def test_a_write_to_an_item_in_a_transaction_conflicts_and_standard_mode_does_not_retry(
        slow_transactions: DynamoDBSemantics):
    proxy, db = slow_transactions, client(slow_transactions.endpoint)
    pk = fresh_pk()
    db.put_item(TableName=TABLE, Item=key(pk))

    transaction = in_background(proxy, "TransactWriteItems",
                                lambda: db.transact_write_items(TransactItems=[increment(pk)]))
    with pytest.raises(ClientError) as conflict:
        db.update_item(**increment(pk)["Update"])
    # A read of the item during the transaction succeeds (serializable with it).
    assert db.get_item(TableName=TABLE, Key=key(pk))["Item"]["PK"] == {"S": pk}
    assert "ResponseMetadata" in transaction()

    assert code(conflict.value) == "TransactionConflictException"
    assert conflict.value.response["Error"]["Message"] == "Transaction is ongoing for the item."
    assert conflict.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    counters = proxy.counters()
    assert counters.calls["UpdateItem"] == 1
    assert counters.conflicts == 1
    # Once the transaction is over, the same write goes through.
    db.update_item(**increment(pk)["Update"])
    item = db.get_item(TableName=TABLE, Key=key(pk), ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "2"}


def test_single_writes_never_cancel_a_transaction_and_no_update_is_lost(backend: str):
    # The guide lists no conflict of a transaction with a single-item write in
    # progress: the transaction waits for it. The writes, not the transactions,
    # get TransactionConflictException, and retry.
    with DynamoDBSemantics(backend, single_latency=0, transaction_latency=0.005) as proxy:
        db = client(proxy.endpoint)
        pk = fresh_pk()
        db.put_item(TableName=TABLE, Item=key(pk))

        def write_until_done() -> int:
            for attempt in range(1, 1000):
                try:
                    db.update_item(**increment(pk)["Update"])
                    return attempt
                except ClientError as exc:
                    assert code(exc) == "TransactionConflictException"
            raise AssertionError("never got through")

        with ThreadPoolExecutor(4) as pool:
            writes = [pool.submit(write_until_done) for _ in range(20)]
            for _ in range(10):
                db.transact_write_items(TransactItems=[increment(pk)])
            attempts = [w.result() for w in writes]
        item = db.get_item(TableName=TABLE, Key=key(pk), ConsistentRead=True)["Item"]
        assert item["n"] == {"N": "30"}
        counters = proxy.counters()
        assert counters.cancellations == {}
        assert counters.conflicts == sum(attempts) - len(attempts)


def big_item(pk: str, size_kb: int, sk: str = "ITEM") -> dict[str, Any]:
    return {**key(pk, sk), "filler_": {"S": "x" * (size_kb * KB - 100)}}


def test_over_1000_write_units_a_second_on_one_partition_key_is_throttled(backend: str):
    with DynamoDBSemantics(backend, single_latency=0, transaction_latency=0) as proxy:
        db = client(proxy.endpoint, attempts=1)  # see every throttle, no retries
        hot = fresh_pk()
        # 334 KB items cost 334 write units each: two fit in a second, a third does not.
        for i in range(2):
            db.put_item(TableName=TABLE, Item=big_item(hot, 334, sk=f"S{i}"))
        with pytest.raises(ClientError) as throttled:
            db.put_item(TableName=TABLE, Item=big_item(hot, 334, sk="S4"))
        assert code(throttled.value) == "ProvisionedThroughputExceededException"
        assert throttled.value.response["ThrottlingReasons"] == [{
            "reason": "TableWriteKeyRangeThroughputExceeded",
            "resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"}]
        assert "Item" not in db.get_item(TableName=TABLE, Key=key(hot, "S4"))

        # A transaction writing to the same key is cancelled for that item only.
        elsewhere = fresh_pk()
        with pytest.raises(ClientError) as cancelled:
            db.transact_write_items(TransactItems=[
                {"Put": {"TableName": TABLE, "Item": key(elsewhere)}},
                {"Put": {"TableName": TABLE, "Item": big_item(hot, 200, sk="T")}}])
        assert code(cancelled.value) == "TransactionCanceledException"
        reasons = cancelled.value.response["CancellationReasons"]
        assert [r["Code"] for r in reasons] == ["None", "ThrottlingError"]

        # The same load spread over partition keys is not throttled.
        spread = [big_item(fresh_pk(), 334) for _ in range(6)]
        for item in spread:
            db.put_item(TableName=TABLE, Item=item)

        counters = proxy.counters()
        assert counters.throttles == 2
        assert counters.cancellations == {"ThrottlingError": 1}
        assert counters.write_units[f"{TABLE}|{hot}"] == 2 * 334
        assert counters.peak_write_units[f"{TABLE}|{hot}"] <= 1000
        assert counters.largest_item_size == item_size(spread[0]) > 333 * KB


def test_a_hot_index_key_throttles_writes_spread_over_table_keys(backend: str):
    with DynamoDBSemantics(backend, single_latency=0) as proxy:
        db = client(proxy.endpoint, attempts=1)
        hot_index_key = "G#" + fresh_pk()

        def put() -> None:
            db.put_item(TableName=TABLE, Item={**big_item(fresh_pk(), 334),
                                               "GSI1PK": {"S": hot_index_key},
                                               "GSI1SK": {"S": "1"}})

        put()
        put()
        with pytest.raises(ClientError) as throttled:
            put()
        assert throttled.value.response["ThrottlingReasons"] == [{
            "reason": "IndexWriteKeyRangeThroughputExceeded",
            "resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/index/gsi1"}]
        assert "global secondary indexes" in throttled.value.response["Error"]["Message"]
        assert proxy.counters().write_units[f"{TABLE}/gsi1|{hot_index_key}"] == 2 * 334


def test_botocore_standard_mode_retries_a_throttle_as_it_would_on_aws(backend: str):
    with DynamoDBSemantics(backend, single_latency=0) as proxy:
        db = client(proxy.endpoint)
        pk = fresh_pk()
        proxy.inject(kind="throttle", op="UpdateItem", count=1)
        db.update_item(**increment(pk)["Update"])  # the retry succeeds
        counters = proxy.counters()
        assert counters.calls["UpdateItem"] == 2
        assert (counters.throttles, counters.injected) == (1, 1)


def test_larger_items_cost_more_units(backend: str):
    with DynamoDBSemantics(backend, single_latency=0, transaction_latency=0) as proxy:
        db = client(proxy.endpoint)
        small, large, shrunk, txn, indexed = (fresh_pk() for _ in range(5))
        db.put_item(TableName=TABLE, Item=key(small))
        db.put_item(TableName=TABLE, Item=big_item(large, 4))  # just under 4 KB
        db.put_item(TableName=TABLE, Item=big_item(shrunk, 3))
        # An update costs the larger of before and after.
        db.update_item(TableName=TABLE, Key=key(shrunk), UpdateExpression="REMOVE filler_")
        # A transactional write costs twice.
        db.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": big_item(txn, 2)}}])
        # An item with the index's key attributes also writes the index, on its own key.
        db.put_item(TableName=TABLE, Item={**key(indexed), "GSI1PK": {"S": "G#" + indexed},
                                           "GSI1SK": {"S": "1"}})
        # Reads: 4 KB per unit, eventually consistent half.
        db.get_item(TableName=TABLE, Key=key(large), ConsistentRead=True)
        db.get_item(TableName=TABLE, Key=key(shrunk))
        db.query(TableName=TABLE, KeyConditionExpression="PK = :pk",
                 ExpressionAttributeValues={":pk": {"S": large}}, ConsistentRead=True)
        db.query(TableName=TABLE, IndexName="gsi1", KeyConditionExpression="GSI1PK = :pk",
                 ExpressionAttributeValues={":pk": {"S": "G#" + indexed}})

        counters = proxy.counters()
        writes = {pk: counters.write_units[f"{TABLE}|{pk}"]
                  for pk in (small, large, shrunk, txn, indexed)}
        assert writes == {small: 1, large: 4, shrunk: 3 + 3, txn: 2 * 2, indexed: 1}
        assert counters.write_units[f"{TABLE}/gsi1|G#{indexed}"] == 1
        assert not any(b.startswith(f"{TABLE}/gsi1|") and indexed not in b
                       for b in counters.write_units)  # items without GSI1PK write no index
        assert counters.read_units[f"{TABLE}|{large}"] == 1 + 1
        assert counters.read_units[f"{TABLE}|{shrunk}"] == 0.5
        assert counters.read_units[f"{TABLE}/gsi1|G#{indexed}"] == 0.5
        assert counters.largest_item_key == f"{TABLE}|{large}|ITEM"


def test_item_size_follows_the_developer_guide():
    assert item_size({"name": {"S": "héllo"}}) == 4 + 6
    assert item_size({"n": {"N": "123.4500"}}) == 1 + 3 + 1  # 5 significant digits
    assert item_size({"n": {"N": "-0.001"}}) == 1 + 1 + 1
    assert item_size({"b": {"B": "AAEC"}}) == 1 + 3  # raw bytes, not base64
    assert item_size({"t": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size({"m": {"M": {}}}) == 1 + 3
    assert item_size(None) == 0


def test_condition_failures_come_through_as_from_moto(backend: str):
    with DynamoDBSemantics(backend, single_latency=0, transaction_latency=0) as proxy:
        db = client(proxy.endpoint)
        pk = fresh_pk()
        db.put_item(TableName=TABLE, Item={**key(pk), "n": {"N": "5"}})
        with pytest.raises(ClientError) as failed:
            db.put_item(TableName=TABLE, Item=key(pk), ConditionExpression="attribute_not_exists(PK)")
        assert code(failed.value) == "ConditionalCheckFailedException"
        with pytest.raises(ClientError) as cancelled:
            db.transact_write_items(TransactItems=[
                increment(fresh_pk()),
                {"ConditionCheck": {"TableName": TABLE, "Key": key(pk),
                                    "ConditionExpression": "n > :ten",
                                    "ExpressionAttributeValues": {":ten": {"N": "10"}}}}])
        assert code(cancelled.value) == "TransactionCanceledException"
        assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == [
            "None", "ConditionalCheckFailed"]
        # What an UpdateItem returns is what the caller asked for, whatever the proxy asked moto.
        plain = db.update_item(**increment(pk)["Update"])
        assert "Attributes" not in plain
        new = db.update_item(**increment(pk)["Update"], ReturnValues="UPDATED_NEW")
        assert new["Attributes"] == {"n": {"N": "7"}}
        whole = db.update_item(**increment(pk)["Update"], ReturnValues="ALL_NEW")
        assert whole["Attributes"]["n"] == {"N": "8"} and whole["Attributes"]["PK"] == {"S": pk}
        counters = proxy.counters()
        assert counters.cancellations == {"ConditionalCheckFailed": 1}
        assert counters.conflicts == counters.throttles == 0
        # A failed conditional write still costs the item's size.
        assert counters.write_units[f"{TABLE}|{pk}"] == 1 + 1 + 2 + 1 + 1 + 1


def test_injected_faults_answer_as_aws_would_without_reaching_moto(backend: str):
    with DynamoDBSemantics(backend, single_latency=0, transaction_latency=0) as proxy:
        db = client(proxy.endpoint)
        target, bystander = fresh_pk(), fresh_pk()
        proxy.inject(kind="conflict", op="TransactWriteItems", pk=target)
        with pytest.raises(ClientError) as cancelled:
            db.transact_write_items(TransactItems=[increment(bystander), increment(target)])
        assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == [
            "None", "TransactionConflict"]
        assert "Item" not in db.get_item(TableName=TABLE, Key=key(bystander))

        proxy.inject(kind="conflict", op="UpdateItem")
        with pytest.raises(ClientError) as conflict:
            db.update_item(**increment(target)["Update"])
        assert code(conflict.value) == "TransactionConflictException"
        db.update_item(**increment(target)["Update"])  # only the next call

        proxy.inject(kind="throttle", op="GetItem", count=1)
        with pytest.raises(ClientError) as throttled:
            client(proxy.endpoint, attempts=1).get_item(TableName=TABLE, Key=key(target))
        assert throttled.value.response["ThrottlingReasons"][0]["reason"] == (
            "TableReadKeyRangeThroughputExceeded")

        counters = proxy.counters()
        assert (counters.injected, counters.conflicts, counters.throttles) == (3, 1, 1)
        assert counters.cancellations == {"TransactionConflict": 1}
        with pytest.raises(ValueError):
            proxy.inject(kind="conflict", op="GetItem")


def test_counters_count_calls_and_scans_and_are_served_and_reset_over_http(backend: str):
    with DynamoDBSemantics(backend, single_latency=0) as proxy:
        db = client(proxy.endpoint)
        pk = fresh_pk()
        db.put_item(TableName=TABLE, Item=key(pk))
        db.get_item(TableName=TABLE, Key=key(pk))
        db.scan(TableName=TABLE, Limit=1)
        db.describe_table(TableName=TABLE)

        def control(path: str, body: dict[str, Any] | None = None) -> Any:
            request = urllib.request.Request(
                proxy.endpoint + path, method="POST" if body is not None else "GET",
                data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        served = control("/__semantics__/counters")
        assert served["calls"] == {"PutItem": 1, "GetItem": 1, "Scan": 1, "DescribeTable": 1}
        assert served["scans"] == 1
        assert served == proxy.counters().to_dict()

        control("/__semantics__/inject", {"kind": "conflict", "op": "PutItem"})
        with pytest.raises(ClientError):
            db.put_item(TableName=TABLE, Item=key(pk))
        assert proxy.counters().conflicts == 1

        control("/__semantics__/reset", {})
        assert proxy.counters().to_dict() == control("/__semantics__/counters")
        assert proxy.counters().calls == {}


def test_two_hundred_concurrent_connections_are_served(backend: str):
    with DynamoDBSemantics(backend, single_latency=0.2) as proxy:
        host, port = proxy.endpoint.removeprefix("http://").split(":")
        body = json.dumps({"TableName": TABLE, "Key": key("P#none")})
        connections = [http.client.HTTPConnection(host, int(port), timeout=30)
                       for _ in range(200)]

        def get(connection: http.client.HTTPConnection) -> int:
            connection.request("POST", "/", body=body, headers={
                "X-Amz-Target": "DynamoDB_20120810.GetItem",
                "Content-Type": "application/x-amz-json-1.0", "Authorization": SIGNED})
            response = connection.getresponse()
            response.read()
            return response.status

        with ThreadPoolExecutor(200) as pool:
            statuses = list(pool.map(get, connections))
        for connection in connections:
            connection.close()
        assert statuses == [200] * 200
        assert proxy.counters().calls["GetItem"] == 200


def test_runs_as_a_command(backend: str):
    root = ROOT
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.dynamodb_semantics", "--backend", backend,
         "--port", "0", "--single-latency", "0"],
        cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(process.stdout.readline())
        db = client(started["endpoint"])
        db.get_item(TableName=TABLE, Key=key(fresh_pk()))
        with urllib.request.urlopen(started["endpoint"] + "/__semantics__/counters") as response:
            assert json.loads(response.read())["calls"] == {"GetItem": 1}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
