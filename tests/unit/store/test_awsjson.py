"""The lean DynamoDB client (afk/store/awsjson.py): signed as AWS signs, speaking
the wire format boto3's low-level client speaks, failing as boto3's fails."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError, EndpointConnectionError

from afk.errors import StoreUnavailable
from afk.settings import Settings
from afk.store import Dynamo, create_table
from afk.store.awsjson import Credentials, LeanDynamoDB, LeanSecretsManager


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with a canned body and keeps what it received."""

    received: list[tuple[dict[str, str], bytes]] = []
    answer: tuple[int, dict[str, object]] = (200, {})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status, payload = type(self).answer
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"received": [], "answer": (200, {})})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


def test_the_signature_is_the_one_botocore_computes_for_the_same_request(recorder) -> None:
    url, handler = recorder
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-1")
    LeanDynamoDB("eu-west-1", endpoint_url=url, credentials=creds).get_item(
        TableName="t", Key={"PK": {"S": "a"}})
    [(headers, body)] = handler.received
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": headers["content-type"], "X-Amz-Target": headers["x-amz-target"],
        "X-Amz-Date": headers["x-amz-date"], "X-Amz-Security-Token": "token-1"})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key, creds.token),
                       "dynamodb", "eu-west-1")
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert headers["authorization"].endswith(f"Signature={expected}")
    assert headers["x-amz-target"] == "DynamoDB_20120810.GetItem"
    assert headers["x-amz-security-token"] == "token-1"


def test_secrets_manager_is_signed_for_its_service_at_boto3s_endpoint_variable(
        recorder) -> None:
    """GetSecretValue (afk/secrets.py) on JSON 1.1, signed for `secretsmanager`, sent
    where boto3 would send it (AWS_ENDPOINT_URL_SECRETS_MANAGER, read into settings)."""
    url, handler = recorder
    handler.answer = (200, {"ARN": "arn:x", "SecretString": "{}"})
    settings = Settings.from_env({"AWS_ENDPOINT_URL_SECRETS_MANAGER": url})
    assert Settings.from_env({"AWS_ENDPOINT_URL": url}).secrets_endpoint == url
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    answer = LeanSecretsManager("eu-west-1", endpoint_url=settings.secrets_endpoint,
                                credentials=creds).get_secret_value(SecretId="arn:x")
    assert answer["SecretString"] == "{}"
    [(headers, body)] = handler.received
    assert json.loads(body) == {"SecretId": "arn:x"}
    assert headers["x-amz-target"] == "secretsmanager.GetSecretValue"
    assert headers["content-type"] == "application/x-amz-json-1.1"
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": headers["content-type"], "X-Amz-Target": headers["x-amz-target"],
        "X-Amz-Date": headers["x-amz-date"]})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key),
                       "secretsmanager", "eu-west-1")
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert headers["authorization"].endswith(f"Signature={expected}")
    assert "/secretsmanager/aws4_request" in headers["authorization"]


def test_errors_come_back_as_botocore_client_errors_with_the_whole_response(recorder) -> None:
    url, handler = recorder
    handler.answer = (400, {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled", "CancellationReasons": [
            {"Code": "ConditionalCheckFailed", "Item": {"blob": {"B": "AAEC"}}}]})
    client = LeanDynamoDB("us-east-1", endpoint_url=url, credentials=Credentials("a", "b"))
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=[])
    response = caught.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    assert response["CancellationReasons"][0]["Item"] == {"blob": {"B": b"\x00\x01\x02"}}
    assert len(handler.received) == 1, "a cancelled transaction is not retried by the client"


def test_throttles_are_retried_then_surface(recorder) -> None:
    url, handler = recorder
    handler.answer = (400, {"__type": "x#ProvisionedThroughputExceededException"})
    client = LeanDynamoDB("us-east-1", endpoint_url=url, credentials=Credentials("a", "b"))
    with pytest.raises(ClientError):
        client.put_item(TableName="t", Item={})
    assert len(handler.received) == 4  # botocore's standard mode for DynamoDB: 4 attempts


def test_an_unreachable_endpoint_is_botocores_connection_error() -> None:
    client = LeanDynamoDB("us-east-1", endpoint_url="http://127.0.0.1:9",
                          credentials=Credentials("a", "b"))
    with pytest.raises(EndpointConnectionError):
        client.get_item(TableName="t", Key={})


def test_binary_values_pages_and_table_creation_on_the_embedded_dynamodb(
        embedded_dynamodb: str) -> None:
    dynamo = Dynamo("lean-client", endpoint_url=embedded_dynamodb)
    assert create_table(dynamo.client, "lean-client") is True
    assert create_table(dynamo.client, "lean-client") is False
    for i in range(5):
        dynamo.client.put_item(TableName="lean-client", Item={
            "PK": {"S": "p"}, "SK": {"S": f"s{i}"}, "data": {"B": bytes([i, 255])},
            "nested": {"M": {"B": {"S": "a map key named B is not binary"}}}})
    pages = list(dynamo.client.get_paginator("query").paginate(
        TableName="lean-client", KeyConditionExpression="PK = :p",
        ExpressionAttributeValues={":p": {"S": "p"}}, Limit=2))
    items = [item for page in pages for item in page["Items"]]
    assert len(pages) >= 3
    assert [item["data"]["B"] for item in items] == [bytes([i, 255]) for i in range(5)]
    assert items[0]["nested"] == {"M": {"B": {"S": "a map key named B is not binary"}}}


def test_without_credentials_the_store_is_unavailable_at_the_call_not_at_startup(
        monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    dynamo = Dynamo("t", endpoint_url=None)  # building the store never fails
    with pytest.raises(StoreUnavailable), dynamo.errors():
        dynamo.client.get_item(TableName="t", Key={})
