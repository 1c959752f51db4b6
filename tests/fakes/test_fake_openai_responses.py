"""Self-tests for the fake OpenAI upstream's `POST /v1/responses`, with the official SDK
(responses.create / responses.stream) and against the PROTOCOLS.md §2.4 transcripts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.servers import serve

FIXTURES = FIXTURES_ROOT / "openai_responses"
WEATHER = {"type": "function", "name": "get_weather", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
PARIS = [{"id": "call_Qx7", "name": "get_weather", "arguments": '{"city":"Paris"}'}]


def normalise(raw: bytes) -> str:
    """Pin the per-response ids and timestamp to the transcript's values."""
    text = raw.decode("utf-8")
    for prefix, pinned in (("resp", "resp_68a1"), ("msg", "msg_68a2"), ("fc", "fc_68a3")):
        text = re.sub(rf'"{prefix}_[0-9a-f]{{24}}"', f'"{pinned}"', text)
    return re.sub(r'"created_at":\d+', '"created_at":1764000000', text)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeOpenAI, str]) -> FakeOpenAI:
    server[0].reset()
    return server[0]


@pytest.fixture
def client(server: tuple[FakeOpenAI, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[1] + "/v1", api_key="sk-test", max_retries=0)


@pytest.mark.parametrize(("reply", "fixture"), [
    (Reply(text="Hello!", completion_tokens=3, cache_write_tokens=None), "stream_text.sse"),
    (Reply(tool_calls=PARIS, cache_write_tokens=None), "stream_tool_call.sse"),
])
def test_streams_match_the_transcripts_byte_for_byte(
    fake: FakeOpenAI, server: tuple[FakeOpenAI, str], reply: Reply, fixture: str
) -> None:
    fake.push(reply)
    response = httpx.post(server[1] + "/v1/responses",
                          json={"model": "gpt-4.1-mini", "input": "Hi", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert normalise(response.content) == (FIXTURES / fixture).read_text()


def test_create_text(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(text="Hello world!", prompt_tokens=20, cached_tokens=5))
    response = client.responses.create(model="gpt-4.1-mini", input="Hi", instructions="Be nice")
    assert response.output_text == "Hello world!" and response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens == 20
    assert response.usage.input_tokens_details.cached_tokens == 5
    assert response.usage.input_tokens_details.cache_write_tokens == 0
    assert fake.requests[0].path == "/v1/responses"
    assert fake.requests[0].body["instructions"] == "Be nice"
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test"


def test_create_function_call_with_reasoning(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(tool_calls=PARIS, reasoning="Need the weather.", reasoning_tokens=8))
    response = client.responses.create(model="gpt-5-mini", input="Weather?", tools=[WEATHER])
    reasoning, call = response.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Need the weather."
    assert reasoning.encrypted_content == "gAAAAfake-encrypted-reasoning"
    assert call.type == "function_call" and call.call_id == "call_Qx7"
    assert call.arguments == '{"city":"Paris"}'
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 8


def test_stream_final_response(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(text="Sunny.", tool_calls=PARIS, reasoning=""))
    with client.responses.stream(model="gpt-5-mini", input="Hi", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert final.output_text == "Sunny."
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[0].summary == []


def test_failed_stream_and_body(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(text="Partial", failed="The server had an error"))
    with client.responses.stream(model="m", input="Hi") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message == "The server had an error"
    fake.push(Reply(failed="Boom", error_code="server_error"))
    response = client.responses.create(model="m", input="Hi")
    assert response.status == "failed" and response.error is not None
    assert response.error.message == "Boom"


def test_http_errors_and_nested_error_event(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(status=429, error_type="requests", error_code="rate_limit_exceeded"))
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="m", input="Hi")
    fake.push(Reply(text="Partial", mid_stream_error="overloaded"))
    with pytest.raises(openai.APIError, match="overloaded"), \
            client.responses.stream(model="m", input="Hi") as stream:
        list(stream)


def test_incomplete_and_eof(fake: FakeOpenAI, server: tuple[FakeOpenAI, str],
                            client: openai.OpenAI) -> None:
    fake.push(Reply(text="Cut", finish_reason="length"))
    response = client.responses.create(model="m", input="Hi")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    fake.push(Reply(text="one two three", eof_after=3, chunk_delay=0.001))
    raw = httpx.post(server[1] + "/v1/responses",
                     json={"model": "m", "input": "Hi", "stream": True}).content
    assert raw.count(b"event: ") == 3 and b"response.completed" not in raw
