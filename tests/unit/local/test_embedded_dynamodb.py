"""The embedded DynamoDB keeps DynamoDB's transaction semantics with cheaper
rollback backups: a transaction that fails part-way changes nothing."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from afk.store import Dynamo, Store, create_table


def test_a_failed_transaction_rolls_back_what_it_already_applied(embedded_dynamodb: str):
    dynamo = Dynamo("afk-rollback", endpoint_url=embedded_dynamodb)
    create_table(dynamo.client, "afk-rollback")
    store = Store(dynamo)
    account = store.accounts.create("rollback", credits=1000)
    others = [store.accounts.create(f"other-{i}", credits=7) for i in range(3)]
    key = {"PK": {"S": f"ACCOUNT#{account.id}"}, "SK": {"S": "ACCOUNT"}}
    with pytest.raises(ClientError) as caught:
        dynamo.client.transact_write_items(TransactItems=[
            # Applied first...
            {"Update": {"TableName": "afk-rollback", "Key": key,
                        "UpdateExpression": "SET balance = balance + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            # ...then this fails: that item exists.
            {"Put": {"TableName": "afk-rollback",
                     "Item": {"PK": {"S": f"ACCOUNT#{others[0].id}"}, "SK": {"S": "ACCOUNT"}},
                     "ConditionExpression": "attribute_not_exists(PK)"}},
        ])
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert store.accounts.require(account.id).balance == 1000
    assert [store.accounts.require(o.id).balance for o in others] == [7, 7, 7]

    # And a transaction that succeeds after the rollback still sees every item.
    dynamo.client.transact_write_items(TransactItems=[
        {"Update": {"TableName": "afk-rollback", "Key": key,
                    "UpdateExpression": "SET balance = balance + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}}])
    assert store.accounts.require(account.id).balance == 1001
    assert len(store.ledger.all_entries(account.id)) == 1
