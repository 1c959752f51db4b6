"""Each route's errors in its own dialect (the route carries it: afk/http/routing.py),
read by that dialect's SDK: Anthropic's on the Messages routes, Gemini's on Gemini's,
the caller's SDK's on /v1/models, OpenAI's on a route the gateway does not have."""

from __future__ import annotations

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors

from tests.conftest import Customer


def test_a_messages_route_fails_in_anthropic_shape(customer: Customer):
    with pytest.raises(anthropic.NotFoundError) as caught:
        customer.anthropic().messages.create(model="no-such-model", max_tokens=10,
                                             messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with customer.http() as http:
        wrong_method = http.get("/v1/messages/count_tokens")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "error"
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


def test_a_gemini_route_fails_in_gemini_shape(customer: Customer):
    client = customer.genai()
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_the_model_routes_fail_in_the_callers_sdk_shape(customer: Customer):
    with pytest.raises(anthropic.NotFoundError) as as_anthropic:
        customer.anthropic().models.retrieve("no-such-model")
    assert as_anthropic.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    client = customer.genai()
    with pytest.raises(genai_errors.ClientError) as as_gemini:
        client.models.get(model="no-such-model")
    assert as_gemini.value.status == "NOT_FOUND"
    with pytest.raises(openai.NotFoundError) as as_openai:
        customer.openai().models.retrieve("no-such-model")
    assert as_openai.value.code == "model_not_found"


def test_an_unknown_route_fails_in_openai_shape(customer: Customer):
    with customer.http() as http:
        response = http.post("/v1/messages/batches", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_route"
