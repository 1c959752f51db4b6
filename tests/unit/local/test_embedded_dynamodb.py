"""The embedded DynamoDB keeps DynamoDB's transaction semantics with cheaper
rollback backups (a transaction that fails part-way changes nothing), answers
Queries from the queried partition, and sends items as the SDK reads them."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from afk.store import Dynamo, Store, create_table
from tests.support.tables import new_table


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


def test_every_attribute_type_reads_back_as_written(embedded_dynamodb: str) -> None:
    """Items go out as moto holds them (DynamoDB JSON) or, binary ones, through
    moto's own serializer: either way the SDK reads back exactly what was put."""
    db = new_table(embedded_dynamodb)
    item = {"PK": {"S": "A"}, "SK": {"S": "1"}, "n": {"N": "-12.50"}, "t": {"BOOL": True},
            "f": {"BOOL": False}, "z": {"NULL": True}, "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2.5"]}, "l": {"L": [{"S": "x"}, {"N": "3"}, {"M": {}}]},
            "m": {"M": {"k": {"L": [{"BOOL": False}]}, "e": {"S": ""}}}, "u": {"S": "é ✓"}}
    binary = {"PK": {"S": "A"}, "SK": {"S": "2"}, "b": {"B": b"\x00\xffbytes"},
              "bs": {"BS": [b"\x01", b"\x02"]}}
    for one in (item, binary):
        db.client.put_item(TableName=db.table, Item=one)
    got = db.client.get_item(TableName=db.table, Key={"PK": {"S": "A"}, "SK": {"S": "1"}})
    assert _canonical(got["Item"]) == _canonical(item)
    queried = db.client.query(TableName=db.table, KeyConditionExpression="PK = :p",
                              ExpressionAttributeValues={":p": {"S": "A"}})["Items"]
    assert [_canonical(i) for i in queried] == [_canonical(item), _canonical(binary)]


def _canonical(item: dict) -> dict:
    """Sets compare as sets (DynamoDB keeps no order in them)."""
    return {name: {kind: sorted(value) if kind in ("SS", "NS", "BS") else value
                   for kind, value in attribute.items()} for name, attribute in item.items()}


def _query(db: Dynamo, pk: str, index: str | None = None, **extra) -> list[str]:
    names = ("GSI1PK", "GSI1SK") if index else ("PK", "SK")
    kwargs = {"IndexName": index} if index else {}
    pages = db.client.get_paginator("query").paginate(
        TableName=db.table, KeyConditionExpression=f"{names[0]} = :p",
        ExpressionAttributeValues={":p": {"S": pk}}, **kwargs, **extra)
    return [item["v"]["S"] for page in pages for item in page["Items"]]


def test_queries_see_their_partition_and_every_write_to_it(embedded_dynamodb: str) -> None:
    """A Query reads the queried partition of the table or of its index, in key
    order, paged, and sees each write (put, update moving an item between index
    partitions, delete, transaction) as soon as it is made."""
    db = new_table(embedded_dynamodb)

    def put(pk: str, sk: str, gsi: str, v: str) -> None:
        db.client.put_item(TableName=db.table, Item={
            "PK": {"S": pk}, "SK": {"S": sk}, "GSI1PK": {"S": gsi}, "GSI1SK": {"S": sk},
            "v": {"S": v}})

    for i in range(30):  # other partitions, in the table and in the index
        put(f"OTHER#{i % 3}", f"{i:03d}", f"G#{i % 2}", f"other-{i}")
    put("P", "2", "G#P", "b")
    put("P", "1", "G#P", "a")
    put("Q", "3", "G#P", "c")
    assert _query(db, "P") == ["a", "b"]
    assert _query(db, "P", ScanIndexForward=False, Limit=1) == ["b", "a"]  # paged
    assert _query(db, "G#P", "gsi1") == ["a", "b", "c"]
    assert _query(db, "G#P", "gsi1", Limit=2) == ["a", "b", "c"]
    assert _query(db, "nobody") == [] and _query(db, "G#nobody", "gsi1") == []

    db.client.update_item(TableName=db.table, Key={"PK": {"S": "Q"}, "SK": {"S": "3"}},
                          UpdateExpression="SET GSI1PK = :g",
                          ExpressionAttributeValues={":g": {"S": "G#R"}})
    assert _query(db, "G#P", "gsi1") == ["a", "b"] and _query(db, "G#R", "gsi1") == ["c"]
    db.client.delete_item(TableName=db.table, Key={"PK": {"S": "P"}, "SK": {"S": "1"}})
    assert _query(db, "P") == ["b"] and _query(db, "G#P", "gsi1") == ["b"]
    db.client.transact_write_items(TransactItems=[{"Put": {"TableName": db.table, "Item": {
        "PK": {"S": "P"}, "SK": {"S": "0"}, "GSI1PK": {"S": "G#P"}, "GSI1SK": {"S": "0"},
        "v": {"S": "z"}}}}])
    assert _query(db, "P") == ["z", "b"] and _query(db, "G#P", "gsi1") == ["z", "b"]
    assert len(_query(db, "OTHER#0")) == 10 and len(_query(db, "G#1", "gsi1")) == 15
