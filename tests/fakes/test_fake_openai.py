"""Self-tests for tests/support: the fake OpenAI upstream must satisfy the official SDK.

One fake and one server are shared by the module (``fake.reset()`` between tests) to keep
the whole file well under a few seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.fake_openai import FakeOpenAI, Reply, parse_sse
from tests.fakes.upstream import split_words, sse_event, wait_until
from tests.support.servers import serve

MESSAGES = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

# PROTOCOLS.md §1.3 transcripts, verbatim.
TEXT_TRANSCRIPT = """\
data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

"""

TOOL_TRANSCRIPT = """\
data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Qx7","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\""}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":\\"Paris\\"}"}}]},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-B9x1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4.1-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":17,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

"""


def normalise(raw: bytes) -> str:
    """Pin the per-response id and timestamp to the transcript's values."""
    text = raw.decode("utf-8")
    text = re.sub(r'"id":"chatcmpl-[^"]+"', '"id":"chatcmpl-B9x1"', text)
    return re.sub(r'"created":\d+', '"created":1764000000', text)


# ----- fixtures ------------------------------------------------------------------------------
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
def url(server: tuple[FakeOpenAI, str]) -> str:
    return server[1]


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test-123", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=5) as c:
        yield c


# ----- helpers -------------------------------------------------------------------------------
def test_sse_event_and_split_words() -> None:
    assert sse_event({"a": "é", "b": None}) == 'data: {"a":"é","b":null}\n\n'.encode()
    assert sse_event("[DONE]") == b"data: [DONE]\n\n"
    assert sse_event({"type": "ping"}, event="ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse_event("a\nb") == b"data: a\ndata: b\n\n"
    assert split_words("Hello world!") == ["Hello", " world", "!"]
    assert split_words("") == []
    assert "".join(split_words("  x, y?\n\nz  ")) == "  x, y?\n\nz  "


def test_many_servers_at_once() -> None:
    fakes = [FakeOpenAI() for _ in range(3)]
    with serve(fakes[0].app) as a, serve(fakes[1].app) as b, serve(fakes[2].app) as c:
        assert len({a, b, c}) == 3
        for u in (a, b, c):
            assert httpx.get(f"{u}/v1/models").status_code == 200
    assert all(len(f.requests) == 1 for f in fakes)


# ----- non-stream ----------------------------------------------------------------------------
def test_non_stream_text(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(text="Hello world!", prompt_tokens=20, cached_tokens=5, reasoning_tokens=2))
    c = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5)
    assert c.object == "chat.completion" and c.id.startswith("chatcmpl-")
    assert c.model == "gpt-4o-mini"
    assert c.service_tier == "default" and c.system_fingerprint
    choice = c.choices[0]
    assert choice.message.content == "Hello world!"
    assert choice.message.role == "assistant" and choice.message.refusal is None
    assert choice.message.tool_calls is None and choice.message.annotations == []
    assert choice.finish_reason == "stop" and choice.logprobs is None
    assert c.usage is not None
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (20, 3, 23)
    assert c.usage.prompt_tokens_details and c.usage.prompt_tokens_details.cached_tokens == 5
    assert (
        c.usage.completion_tokens_details
        and c.usage.completion_tokens_details.reasoning_tokens == 2
    )

    [rec] = fake.requests
    assert rec.path == "/v1/chat/completions" and rec.method == "POST"
    assert rec.headers["authorization"] == "Bearer sk-test-123"
    assert rec.body == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.5}


def test_non_stream_wire_shape(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.push(
        Reply(
            tool_calls=[{"id": "call_Qx7", "name": "get_weather", "arguments": {"city": "Paris"}}]
        )
    )
    r = http.post("/v1/chat/completions", json={"model": "gpt-4.1-mini", "messages": MESSAGES})
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    ]
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_Qx7",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ]
    assert body["usage"]["completion_tokens"] == 17 and body["usage"]["total_tokens"] == 29
    # No Authorization header at all is fine too (and recorded as absent).
    assert "authorization" not in fake.requests[0].headers


# ----- streaming -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "transcript"),
    [
        # The transcript bills 3 completion tokens; the fake's default would be 2 ("Hello", "!").
        (Reply(completion_tokens=3), TEXT_TRANSCRIPT),
        (
            Reply(
                tool_calls=[
                    {"id": "call_Qx7", "name": "get_weather", "arguments": '{"city":"Paris"}'}
                ]
            ),
            TOOL_TRANSCRIPT,
        ),
    ],
)
def test_stream_is_byte_exact(
    fake: FakeOpenAI, http: httpx.Client, reply: Reply, transcript: str
) -> None:
    fake.push(reply)
    body = {
        "model": "gpt-4.1-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert normalise(r.content) == transcript


def test_stream_text_with_sdk_helper(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(text="Hello brave new world!"))
    with client.chat.completions.stream(
        model="gpt-4.1-mini", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        # The role chunk's content "" surfaces as an empty first delta.
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert deltas == ["", "Hello", " brave", " new", " world", "!"]
    assert final.choices[0].message.content == "Hello brave new world!"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == 5
    assert fake.requests[0].body["stream"] is True
    assert wait_until(lambda: fake.streams_finished == 1) and fake.cancelled == 0


@pytest.mark.parametrize("include_usage", [True, False])
def test_include_usage_toggles_usage(
    fake: FakeOpenAI, client: openai.OpenAI, include_usage: bool
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
        assert usage_chunks[0].usage.total_tokens == 12 + 2  # type: ignore[union-attr]
    else:
        assert usage_chunks == [] and all(c.choices for c in chunks)


def test_stream_without_stream_options_has_no_usage_key(
    fake: FakeOpenAI, http: httpx.Client
) -> None:
    r = http.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    events = parse_sse(r.content)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1] if isinstance(e, dict))


def test_stream_parallel_tool_calls_accumulate(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    args_paris = '{"city":"Paris","unit":"celsius"}'
    fake.push(
        Reply(
            tool_calls=[
                {"id": "call_1", "name": "get_weather", "arguments": args_paris},
                {"id": "call_2", "name": "get_weather", "arguments": {"city": "Tokyo"}},
            ]
        )
    )
    with client.chat.completions.stream(
        model="gpt-4.1-mini", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        arg_deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len([e for e in arg_deltas if e.index == 0]) >= 2  # arguments really were fragmented
    message = final.choices[0].message
    assert message.content is None
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls or []] == [
        ("call_1", "get_weather", args_paris),
        ("call_2", "get_weather", '{"city":"Tokyo"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert fake.requests[0].body["tools"] == [WEATHER_TOOL]


def test_stream_text_then_tool_call(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(
        Reply(
            text="Let me check.",
            tool_calls=[{"name": "get_weather", "arguments": '{"city":"Oslo"}'}],
        )
    )
    with client.chat.completions.stream(
        model="m", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls and message.tool_calls[0].id == "call_1"
    assert message.tool_calls[0].function.arguments == '{"city":"Oslo"}'


# ----- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error_type", "exc"),
    [
        (500, "server_error", openai.InternalServerError),
        (503, "server_error", openai.InternalServerError),
        (429, "requests", openai.RateLimitError),
        (400, "invalid_request_error", openai.BadRequestError),
        (401, "invalid_request_error", openai.AuthenticationError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_status(
    fake: FakeOpenAI,
    client: openai.OpenAI,
    status: int,
    error_type: str,
    exc: type[openai.APIStatusError],
    stream: bool,
) -> None:
    fake.push(
        Reply(status=status, error_type=error_type, error_message="boom", error_code="some_code")
    )
    with pytest.raises(exc) as info:
        if stream:
            list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
        else:
            client.chat.completions.create(model="m", messages=MESSAGES)
    err = info.value
    assert err.status_code == status and err.response.headers["x-should-retry"] == "false"
    assert err.body == {"message": "boom", "type": error_type, "param": None, "code": "some_code"}
    assert len(fake.requests) == 1


def test_mid_stream_error_raises_api_error(
    fake: FakeOpenAI, client: openai.OpenAI, http: httpx.Client
) -> None:
    fake.push(Reply(text="Partial answer", mid_stream_error="The server had an error"))
    with (
        pytest.raises(openai.APIError, match="The server had an error"),
        client.chat.completions.stream(model="m", messages=MESSAGES) as stream,
    ):
        stream.get_final_completion()

    fake.push(Reply(text="Hi", mid_stream_error="overloaded"))
    events = parse_sse(
        http.post(
            "/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
        ).content
    )
    assert [e["choices"][0]["delta"] for e in events[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]
    assert events[-1] == {
        "error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}
    }


def test_eof_after_truncates_stream(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.push(Reply(text="one two three", eof_after=2))
    r = http.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    events = parse_sse(r.content)
    assert len(events) == 2 and "[DONE]" not in events
    assert wait_until(lambda: fake.streams_finished == 1) and fake.cancelled == 0


def test_chunk_delay_and_stall_then_disconnect(fake: FakeOpenAI, url: str) -> None:
    fake.push(Reply(text="a b c", chunk_delay=0.05, stall_after=3))
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    start = time.monotonic()
    with (
        httpx.Client(base_url=url, timeout=5) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        lines = r.iter_lines()
        got: list[dict[str, object]] = []
        for line in lines:
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
            if len(got) == 3:
                break
        assert time.monotonic() - start >= 0.1  # two inter-chunk delays
        assert fake.cancelled == 0 and fake.streams_finished == 0
    # Leaving the block closed the connection mid-stall.
    assert wait_until(lambda: fake.cancelled == 1)
    assert fake.streams_finished == 0 and fake.streams_started == 1


def test_client_disconnect_during_stream_is_counted(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.push(Reply(text="word " * 50, chunk_delay=0.01))
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    assert wait_until(lambda: fake.cancelled == 1) and fake.streams_finished == 0


def test_non_stream_stall_times_out(fake: FakeOpenAI, url: str) -> None:
    fake.push(Reply(stall_after=0))
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=0.3) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model="m", messages=MESSAGES)


# ----- misc routes ---------------------------------------------------------------------------
def test_models(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models] == fake.models
    assert all(m.object == "model" and m.owned_by for m in models)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    assert [r.path for r in fake.requests] == ["/v1/models", "/v1/models/gpt-4o", "/v1/models/nope"]
    assert fake.requests[0].method == "GET" and fake.requests[0].body is None


def test_replies_are_fifo_then_default(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(Reply(text="first"), Reply(text="second"))
    texts = [
        client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
        for _ in range(3)
    ]
    assert texts == ["first", "second", "Hello!"]


def test_concurrent_requests(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.push(*(Reply(text="x", chunk_delay=0.05) for _ in range(4)))
    results: list[str] = []

    def one() -> None:
        with client.chat.completions.stream(model="m", messages=MESSAGES) as s:
            results.append(s.get_final_completion().choices[0].message.content or "")

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == ["x"] * 4
