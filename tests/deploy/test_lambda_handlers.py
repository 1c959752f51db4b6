"""The thin Lambda handlers on the API Gateway events in events/: the same app,
wired to the environment the function gets on AWS."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest

import afk.gateway
import afk.settings
from tests.conftest import Customer
from tests.support.paths import ROOT


def load_function(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"function_{name}",
                                                  ROOT / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lambda_env(monkeypatch, dynamodb_endpoint: str):
    monkeypatch.setenv("AFK_TABLE", "afk-test")
    monkeypatch.setenv("AFK_DYNAMODB_ENDPOINT", dynamodb_endpoint)
    afk.settings.get_settings.cache_clear()
    monkeypatch.setattr(afk.gateway, "_default", None)
    yield
    afk.settings.get_settings.cache_clear()


def event(name: str, key: str) -> dict:
    data = json.loads((ROOT / "events" / f"{name}.json").read_text())
    data["headers"]["Authorization"] = f"Bearer {key}"
    if data.get("multiValueHeaders"):
        data["multiValueHeaders"]["Authorization"] = [f"Bearer {key}"]
    return data


class Context:
    function_name = "test"
    aws_request_id = "lambda-request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def test_models_function_answers_its_event(lambda_env, monkeypatch, customer: Customer):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    handler = load_function("models").handler
    response = handler(event("models_list", customer.key), Context())
    assert response["statusCode"] == 200
    ids = {m["id"] for m in json.loads(response["body"])["data"]}
    # Listed: the offline models and those of the provider with a key; not the others.
    assert {"echo", "gpt-4o-mini"} <= ids and "claude-haiku-4-5" not in ids
    assert any(k.lower() == "x-afk-request-id" for k in
               {**response.get("headers", {}), **response.get("multiValueHeaders", {})})


def test_account_function_answers_its_event(lambda_env, customer: Customer):
    handler = load_function("account").handler
    response = handler(event("account_get", customer.key), Context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["balance"] == "10.00"


def test_a_bad_key_is_401_in_openai_shape(lambda_env):
    handler = load_function("models").handler
    response = handler(event("models_list", "afk-" + "0" * 48), Context())
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "invalid_api_key"


def test_sweeper_function_runs(lambda_env, customer: Customer):
    result = load_function("sweeper").handler({"source": "aws.events"}, Context())
    assert set(result) == {"due", "closed"}


def test_aggregator_function_counts_a_stream_batch_once(lambda_env, make_customer,
                                                        store, dynamodb_endpoint: str):
    """The function on the table's stream, given a batch shaped as Lambda delivers
    DynamoDB stream records (read here from the embedded store's own stream, from
    just before the account was opened); the same batch again (Lambda's retry)
    counts nothing."""
    from decimal import Decimal

    import boto3

    from afk.money import to_pico

    streams = boto3.client("dynamodbstreams", region_name="us-east-1",
                           endpoint_url=dynamodb_endpoint, aws_access_key_id="local",
                           aws_secret_access_key="local")
    arn = store.dynamo.client.describe_table(TableName="afk-test")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="LATEST")["ShardIterator"]
    customer: Customer = make_customer()
    store.accounts.add_credits(customer.account_id, to_pico(Decimal(7)), note="for the stream")
    records = []
    while True:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records += [{**r, "eventSourceARN": arn} for r in page["Records"]]
        iterator = page["NextShardIterator"]
        if not page["Records"]:
            break
    mine = [r for r in records if customer.account_id in json.dumps(r, default=str)]
    handler = load_function("aggregator").handler
    handler({"Records": mine}, Context())
    assert handler({"Records": mine}, Context()) == {"counted": 0}
    day = [r for r in store.rollups.for_account(customer.account_id, "2000-01-01",
                                                "2999-12-31")]
    assert sum(r.totals.credits for r in day) == to_pico(Decimal(17))  # opening $10 + $7
