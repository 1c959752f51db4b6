"""The OpenAI Responses API for every model: the official openai SDK's
`responses.create` and `responses.stream()` against a model of each
provider, function-call round trips, chained turns with
`previous_response_id`, and the stored responses themselves."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.conftest import Customer
from tests.integration.test_matrix import MODELS, WEATHER, Upstreams, Usage, assert_charged

TOOLS = [{"type": "function", "name": WEATHER["name"], "description": WEATHER["description"],
          "parameters": WEATHER["parameters"], "strict": False}]


@pytest.fixture
def upstreams(fake_openai, fake_anthropic, fake_gemini) -> Upstreams:
    return Upstreams(fake_openai, fake_anthropic, fake_gemini)


class ResponsesUpstreams(Upstreams):
    """The OpenAI fake answers Responses calls from `push_responses`."""


def script_text(upstreams: Upstreams, provider: str, text: str) -> Usage:
    if provider == "openai":
        from tests.fakes.fake_openai import Reply

        upstreams.fakes["openai"].push(Reply(text=text, prompt_tokens=31, cached_tokens=11,
                                             completion_tokens=9))
        return Usage(input=31, output=9, cached=11)
    return upstreams.script_text(provider, text)


def ask(client: openai.OpenAI, stream: bool, **kwargs):
    if stream:
        with client.responses.stream(**kwargs) as s:
            for _ in s:
                pass
            return s.get_final_response()
    return client.responses.create(**kwargs)


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("provider", list(MODELS))
def test_text(provider: str, stream: bool, customer: Customer, upstreams: Upstreams):
    model = MODELS[provider]
    usage = script_text(upstreams, provider, "Sunny, 18 degrees.")
    response = ask(customer.openai(), stream, model=model, input="What's the weather?",
                   instructions="Answer briefly.")
    assert response.output_text == "Sunny, 18 degrees."
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage.input_tokens == usage.input
    assert_charged(customer, model, [usage])


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("provider", list(MODELS))
def test_function_call_round_trip(provider: str, stream: bool, customer: Customer,
                                  upstreams: Upstreams):
    model = MODELS[provider]
    client = customer.openai()
    first_usage = upstreams.script_call(provider)
    first = ask(client, stream, model=model, input="What's the weather in Paris?", tools=TOOLS)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.call_id

    second_usage = script_text(upstreams, provider, "It is sunny.")
    second = ask(client, stream, model=model, tools=TOOLS, store=False, input=[
        {"role": "user", "content": "What's the weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}])
    assert second.output_text == "It is sunny."
    results = upstreams.tool_result_seen(provider) if provider != "openai" else [
        i for i in upstreams.last_body("openai")["input"]
        if i.get("type") == "function_call_output"]
    assert len(results) == 1 and "18C and sunny" in json.dumps(results)
    assert_charged(customer, model, [first_usage, second_usage])


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
def test_three_turns_chained_with_previous_response_id(provider: str, customer: Customer,
                                                       upstreams: Upstreams):
    model = MODELS[provider]
    client = customer.openai()
    usages = []
    previous = None
    for turn, (question, answer) in enumerate([("My name is Ada.", "Hello Ada."),
                                               ("I like tea.", "Noted: tea."),
                                               ("What is my name?", "Your name is Ada.")]):
        usages.append(script_text(upstreams, provider, answer))
        response = ask(client, turn == 1, model=model, input=question,
                       previous_response_id=previous, instructions=f"Turn {turn}.")
        assert response.output_text == answer
        previous = response.id
    # The upstream received the whole conversation on the last turn, in its own form.
    sent = json.dumps(upstreams.last_body(provider))
    for text in ("My name is Ada.", "Hello Ada.", "I like tea.", "Noted: tea.",
                 "What is my name?", "Turn 2."):
        assert text in sent, text
    assert "Turn 0." not in sent  # instructions are not inherited
    assert_charged(customer, model, usages)


def test_stored_responses_get_delete_and_stay_private(customer: Customer, make_customer,
                                                      upstreams: Upstreams):
    client = customer.openai()
    script_text(upstreams, "anthropic", "Stored answer.")
    created = client.responses.create(model=MODELS["anthropic"], input="Keep this.")
    fetched = client.responses.retrieve(created.id)
    assert (fetched.id, fetched.output_text) == (created.id, "Stored answer.")
    items = client.responses.input_items.list(created.id)
    assert [i.content[0].text for i in items.data] == ["Keep this."]

    stranger = make_customer().openai()
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.create(model=MODELS["anthropic"], input="Continue",
                                  previous_response_id=created.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(created.id)

    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_store_false_keeps_nothing(customer: Customer, upstreams: Upstreams):
    client = customer.openai()
    script_text(upstreams, "gemini", "Ephemeral.")
    response = client.responses.create(model=MODELS["gemini"], input="Forget this.", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    assert Decimal(customer.charges()[0].amount) > 0
