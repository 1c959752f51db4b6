"""The account API on FastAPI (issue 17): its OpenAPI document is served and
describes every route, bodies are validated with errors in the API's own shape
(a 400 naming the field), and no generation function imports FastAPI."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from afk.http.apps import APPS
from tests.conftest import Customer
from tests.support.paths import ROOT


def test_the_openapi_document_describes_every_account_route(customer: Customer):
    # No key: the document describes the API, it holds no account data.
    response = httpx.get(f"{customer.url}/v1/account/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, method in [("/v1/account", "get"), ("/v1/account/keys", "post"),
                         ("/v1/account/keys/{key_id}", "patch"),
                         ("/v1/account/keys/{key_id}", "delete"),
                         ("/v1/account/caps/{model_id}", "put"),
                         ("/v1/account/usage", "get"), ("/v1/account/usage/summary", "get"),
                         ("/v1/account/usage/export", "get"), ("/v1/account/topup", "get"),
                         ("/v1/account/checkout", "post"), ("/webhooks/stripe", "post")]:
        assert method in paths[path], (path, method)
    # The generation routes are not the account API's.
    assert not any(p.startswith(("/v1/chat", "/v1/messages", "/v1beta")) for p in paths)
    new_key = document["components"]["schemas"]["NewKey"]["properties"]
    assert {"name", "scope", "rpm", "spend_per_day", "models", "expires_at"} <= set(new_key)
    assert new_key["spend_per_day"]["anyOf"][0]["type"] == "string"  # money: a decimal string
    usage = {p["name"] for p in paths["/v1/account/usage"]["get"]["parameters"]}
    assert {"limit", "cursor", "model", "type", "since", "until"} <= usage


def test_the_readme_links_the_openapi_document():
    readme = (ROOT / "README.md").read_text()
    assert "/v1/account/openapi.json" in readme


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"usd": 0}, "usd", "Invalid cap"), ({"usd": 0.05}, "usd", "not a float"),
    ({}, "usd", "'usd' is required"),
    ({"usd": "abc"}, "usd", "Invalid cap"),
])
def test_a_bad_cap_body_is_a_400_naming_the_field(customer: Customer, body, param, words):
    with customer.http() as http:
        response = http.put("/v1/account/caps/echo", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("content", [b"[1, 2]", b"{not json", b"\"text\""])
def test_a_body_that_is_no_json_object_is_a_400_in_the_api_shape(customer: Customer, content):
    with customer.http() as http:
        response = http.patch("/v1/account/keys/key_x", content=content,
                              headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["x-afk-request-id"].startswith("req_")


def test_a_body_over_the_limit_is_a_413_in_the_api_shape(customer: Customer):
    with customer.http() as http:
        response = http.patch("/v1/account/keys/key_x", content=b" " * (10 * 1024 * 1024 + 1),
                              headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_an_unknown_query_value_names_the_parameter(customer: Customer):
    with customer.http() as http:
        response = http.get("/v1/account/usage", params={"limit": 1001})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "limit"


def test_no_generation_function_imports_fastapi():
    generation = [name for name in APPS if name not in ("account", "dashboard")]
    code = ("import sys; from afk.http.apps import create_app; from afk.gateway import Gateway; "
            "from afk.settings import Settings; "
            f"[create_app(n, Gateway(Settings())) for n in {generation!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fastapi'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_account_app_builds_without_pydantic_v1_or_the_openapi_models():
    """What the account function's cold start rests on (afk/http/lean_fastapi.py):
    building its app imports no pydantic.v1 and builds no validator of FastAPI's
    OpenAPI models, and its OpenAPI document still renders (they build then)."""
    code = ("import sys; from afk.http.apps import create_app; from afk.gateway import Gateway; "
            "from afk.settings import Settings; from starlette.testclient import TestClient; "
            "app = create_app('account', Gateway(Settings())); "
            "from fastapi.openapi.models import OpenAPI; "
            "print('pydantic.v1' in sys.modules, OpenAPI.__pydantic_complete__); "
            "doc = TestClient(app).get('/v1/account/openapi.json').json(); "
            "print(doc['info']['title'], '/v1/account/keys' in doc['paths'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["False False", "afk gateway account API True"]
