"""Self-tests for tests/fakes/fake_anthropic.py: the fake must satisfy the official SDK
and reproduce the PROTOCOLS.md §3.4 transcripts byte for byte.

One fake and one server serve the module (``fake.reset()`` between tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import anthropic
import httpx
import httpx2
import pytest

from tests.fakes.fake_anthropic import FakeAnthropic, Reply, count_words
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.servers import serve

FIXTURES = FIXTURES_ROOT / "anthropic"
MODEL = "claude-sonnet-4-5"  # the transcripts' model (the SDK warns it is deprecated)
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
MESSAGES = [{"role": "user", "content": "Hi"}]
WEATHER = {"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}}}
PARIS = Reply(tool_calls=[{"id": "toolu_01T1x1fJ", "name": "get_weather",
                           "input": {"city": "Paris"}}], input_tokens=380)


def normalise(raw: bytes) -> str:
    """Pin the per-message id to the transcripts' value."""
    return re.sub(r'"id":"msg_[0-9a-f]+"', '"id":"msg_01XFDUDY"', raw.decode())


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeAnthropic, str]) -> FakeAnthropic:
    server[0].reset()
    return server[0]


@pytest.fixture
def client(server: tuple[FakeAnthropic, str]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server[1], api_key="sk-ant-test", max_retries=0,
                             timeout=5) as c:
        yield c


def raw_stream(url: str) -> bytes:
    body = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, "stream": True}
    return httpx.post(f"{url}/v1/messages", json=body, timeout=5).content


# ----- transcripts -----------------------------------------------------------------------
@pytest.mark.parametrize(("reply", "fixture"), [
    (Reply(), "stream_text.sse"),
    (PARIS, "stream_tool_call.sse"),
])
def test_stream_matches_transcript(server: tuple[FakeAnthropic, str], fake: FakeAnthropic,
                                   reply: Reply, fixture: str) -> None:
    fake.push(reply)
    assert normalise(raw_stream(server[1])) == (FIXTURES / fixture).read_text()


def test_thinking_and_mid_stream_error_match_transcript(
        server: tuple[FakeAnthropic, str], fake: FakeAnthropic) -> None:
    fake.push(Reply(thinking="The user wants a greeting.", mid_stream_error="Overloaded"))
    wire = normalise(raw_stream(server[1]))
    start, rest = wire.split("\n\n", 1)
    assert start.startswith("event: message_start\n")
    assert rest == (FIXTURES / "stream_thinking_error.sse").read_text()


def test_non_stream_matches_documented_body(client: anthropic.Anthropic,
                                            fake: FakeAnthropic) -> None:
    fake.push(Reply(text="I'll check.", tool_calls=PARIS.tool_calls, input_tokens=380,
                    output_tokens=58))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64,
                                                   messages=MESSAGES, tools=[WEATHER])
    assert normalise(raw.http_response.content) == (
        FIXTURES / "response_tool_use.json").read_text().strip()


# ----- the SDK -----------------------------------------------------------------------------
def test_create_text(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.push(Reply(text="Hello world!", cache_read_input_tokens=5,
                    cache_creation_input_tokens=7))
    message = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text == "Hello world!"
    assert message.stop_reason == "end_turn" and message.model == MODEL
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 4)
    assert (message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (5, 7)
    recorded = fake.requests[0]
    assert recorded.headers["authorization"] == "Bearer sk-ant-test"
    assert recorded.body["max_tokens"] == 64


def test_stream_text(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.push(Reply(text="Hello world!"))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "Hello world!"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 4)
    assert (fake.streams_started, fake.streams_finished) == (1, 1)


def test_stream_tool_use(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.push(PARIS)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES,
                                tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_01T1x1fJ", "get_weather",
                                                   {"city": "Paris"})
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 42


def test_stream_thinking(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.push(Reply(thinking="Let me think.", thinking_tokens=5, output_tokens=9))
    with client.messages.stream(model=MODEL, max_tokens=2048, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think."
    assert thinking.signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"
    assert text.type == "text" and text.text == "Hello!"
    assert final.usage.output_tokens == 9


@pytest.mark.parametrize(("status", "error"), [
    (400, anthropic.BadRequestError),
    (401, anthropic.AuthenticationError),
    (429, anthropic.RateLimitError),
    (500, anthropic.InternalServerError),
    (529, anthropic.OverloadedError),
])
def test_errors_raise_the_right_class(client: anthropic.Anthropic, fake: FakeAnthropic,
                                      status: int, error: type[Exception]) -> None:
    fake.push(Reply(status=status, error_message="nope"))
    with pytest.raises(error) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.body["error"]["message"] == "nope"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert len(fake.requests) == 1  # not retried


def test_overloaded_body_has_anthropic_shape(client: anthropic.Anthropic,
                                             fake: FakeAnthropic) -> None:
    fake.push(Reply(status=529))
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    assert body["request_id"].startswith("req_")


def test_mid_stream_error_raises(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.push(Reply(text="Hello world!", mid_stream_error="Overloaded"))
    with (pytest.raises(anthropic.APIStatusError) as info,
          client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream):
        stream.get_final_message()
    assert info.value.status_code == 200  # as PROTOCOLS §3.3 says
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_eof_after_truncates_silently(client: anthropic.Anthropic,
                                      fake: FakeAnthropic) -> None:
    fake.push(Reply(eof_after=3))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.stop_reason is None  # the SDK does not notice: the gateway must


def test_chunk_delay_spreads_events(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.push(Reply(chunk_delay=0.01))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "Hello!"


def test_stall_until_client_leaves(server: tuple[FakeAnthropic, str],
                                   fake: FakeAnthropic) -> None:
    fake.push(Reply(stall_after=2))
    client = anthropic.Anthropic(base_url=server[1], api_key="k", max_retries=0, timeout=0.3)
    # The SDK converts a timeout while opening the stream, not while reading it.
    with (pytest.raises((anthropic.APITimeoutError, httpx2.TimeoutException)),
          client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream):
        stream.get_final_message()


def test_count_tokens(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    messages = [{"role": "user", "content": "How is the weather in Paris?"}]
    result = client.messages.count_tokens(model=MODEL, messages=messages, system="Be brief.")
    assert result.input_tokens == 6 + 2
    assert count_words({"messages": messages, "system": "Be brief."}) == 8
    assert fake.requests[0].path == "/v1/messages/count_tokens"


def test_models(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == fake.models
    model = client.models.retrieve(MODEL)
    assert model.lifecycle == "active" and model.display_name == MODEL
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")
