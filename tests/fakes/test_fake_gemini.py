"""Self-tests for tests/fakes/fake_gemini.py: the official google-genai SDK must be
able to use the fake, and its streams must be the PROTOCOLS.md §4.3 transcripts.

One fake and one server are shared by the module (``fake.reset()`` between tests).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.fake_gemini import FakeGemini, Reply, parse_sse
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.servers import serve

FIXTURES = FIXTURES_ROOT / "gemini"
SIGNATURE = "CiQBc2lnLW9wYXF1ZS1ieXRlcy1kZW1v"
MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeGemini, str]]:
    fake = FakeGemini()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeGemini, str]) -> FakeGemini:
    server[0].reset()
    return server[0]


@pytest.fixture
def url(server: tuple[FakeGemini, str]) -> str:
    return server[1]


def _client(url: str, version: str | None = "v1beta") -> genai.Client:
    options = types.HttpOptions(base_url=url, timeout=5000)
    if version is not None:
        options = types.HttpOptions(base_url=url, api_version=version, timeout=5000)
    return genai.Client(api_key="goog-key", http_options=options)


# ================================================================ wire transcripts
def test_text_stream_is_the_transcript_byte_for_byte(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(pieces=["Hel", "lo!"], response_id="mKqOaN7d"))
    raw = httpx.post(f"{url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                     json={"contents": [{"parts": [{"text": "hi"}]}]}).content
    assert raw == (FIXTURES / "stream_text.sse").read_bytes()


def test_tool_call_stream_is_the_transcript_byte_for_byte(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(function_calls=[{"name": "get_weather", "args": {"city": "Paris"},
                                     "thought_signature": SIGNATURE}],
                    prompt_tokens=41, thoughts_tokens=48, response_id="nLqOaP3x"))
    raw = httpx.post(f"{url}/v1/models/{MODEL}:streamGenerateContent?alt=sse",
                     json={"contents": [{"parts": [{"text": "hi"}]}]}).content
    assert raw == (FIXTURES / "stream_tool_call.sse").read_bytes()


def test_non_stream_body_is_the_recorded_one(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(response_id="mKqOaN7d"))
    response = httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent",
                          json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert response.json() == json.loads((FIXTURES / "response_text.json").read_bytes())


def test_stream_without_alt_sse_is_one_json_array(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(pieces=["Hel", "lo!"], response_id="mKqOaN7d"))
    response = httpx.post(f"{url}/v1beta/models/{MODEL}:streamGenerateContent",
                          json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert response.headers["content-type"].startswith("application/json")
    assert b"\n,\r\n" in response.content
    sse = parse_sse((FIXTURES / "stream_text.sse").read_bytes())
    assert response.json() == sse


def test_key_is_recorded_from_header_and_query(fake: FakeGemini, url: str) -> None:
    client = _client(url)
    client.models.generate_content(model=MODEL, contents="hi")
    httpx.post(f"{url}/v1beta/models/{MODEL}:generateContent?key=query-key",
               json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert [fake.api_key(r) for r in fake.requests] == ["goog-key", "query-key"]


# ================================================================ with the SDK
@pytest.mark.parametrize("version", ["v1beta", None])  # None: the SDK's default, v1
def test_sdk_generate_content(fake: FakeGemini, url: str, version: str | None) -> None:
    fake.push(Reply(text="Hello world!", prompt_tokens=7, cached_tokens=3))
    client = _client(url, version)  # keep a reference: the SDK closes on collection
    response = client.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(max_output_tokens=50))
    assert response.text == "Hello world!"
    assert response.usage_metadata.prompt_token_count == 7
    assert response.usage_metadata.cached_content_token_count == 3
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    rec = fake.requests[-1]
    assert rec.path == f"/{version or 'v1'}/models/{MODEL}:generateContent"
    assert rec.body["generationConfig"] == {"maxOutputTokens": 50}


def test_sdk_stream_with_thoughts(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(text="Hello world!", thoughts="Let me think", thoughts_tokens=9))
    client = _client(url)
    chunks = list(client.models.generate_content_stream(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True))))
    thoughts = [p.text for c in chunks for p in c.candidates[0].content.parts if p.thought]
    assert "".join(thoughts) == "Let me think"
    assert "".join(c.text or "" for c in chunks) == "Hello world!"
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.thoughts_token_count == 9
    assert last.usage_metadata.candidates_token_count == 3
    assert last.usage_metadata.total_token_count == 5 + 3 + 9
    assert fake.requests[-1].query == {"alt": "sse"}
    assert (fake.streams_started, fake.streams_finished) == (1, 1)


def test_sdk_function_call_with_signature(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(function_calls=[
        {"name": "get_weather", "args": {"city": "Paris"}, "thought_signature": SIGNATURE},
        {"name": "get_time", "args": {"tz": "UTC"}, "id": "fc_1"}]))
    weather = types.FunctionDeclaration(name="get_weather", parameters_json_schema={
        "type": "object", "properties": {"city": {"type": "string"}}})
    client = _client(url)
    response = client.models.generate_content(
        model=MODEL, contents="weather?", config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[weather])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    first, second = response.function_calls
    assert (first.name, first.args, first.id) == ("get_weather", {"city": "Paris"}, None)
    assert (second.name, second.id) == ("get_time", "fc_1")
    part = response.candidates[0].content.parts[0]
    assert part.thought_signature == base64.b64decode(SIGNATURE)
    assert response.usage_metadata.candidates_token_count == 15
    declaration = fake.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration["parameters_json_schema"]["properties"] == {"city": {"type": "string"}}


def test_sdk_stream_function_call(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(function_calls=[{"name": "get_weather", "args": {"city": "Paris"}}]))
    client = _client(url)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert len(chunks) == 1
    assert chunks[0].function_calls[0].args == {"city": "Paris"}


def test_sdk_blocked_prompt(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(block_reason="SAFETY"))
    client = _client(url)
    response = client.models.generate_content(model=MODEL, contents="bad")
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert response.text is None


@pytest.mark.parametrize(("reply", "kind", "status"), [
    (Reply(status=400, error_reason="API_KEY_INVALID",
           error_message="API key not valid. Please pass a valid API key."),
     errors.ClientError, "INVALID_ARGUMENT"),
    (Reply(status=429), errors.ClientError, "RESOURCE_EXHAUSTED"),
    (Reply(status=503, error_message="The model is overloaded."), errors.ServerError,
     "UNAVAILABLE"),
])
def test_sdk_errors(fake: FakeGemini, url: str, reply: Reply, kind: type,
                    status: str) -> None:
    fake.push(reply)
    client = _client(url)
    with pytest.raises(kind) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (reply.status, status)


def test_sdk_mid_stream_error(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(text="Hello world!", mid_stream_error="The model is overloaded."))
    seen = []
    client = _client(url)
    with pytest.raises(errors.ServerError, match="overloaded"):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            seen.append(chunk.text)
    assert "".join(seen) == "Hello world!"


def test_eof_after_truncates_without_finish_reason(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(text="Hello world!", eof_after=1))
    raw = httpx.post(f"{url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                     json={"contents": [{"parts": [{"text": "hi"}]}]}).content
    [chunk] = parse_sse(raw)
    assert "finishReason" not in chunk["candidates"][0]


def test_stall_hangs_until_the_client_leaves(fake: FakeGemini, url: str) -> None:
    fake.push(Reply(stall_after=1))
    with pytest.raises(httpx.ReadTimeout), httpx.stream(
            "POST", f"{url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=0.3) as response:
        for _ in response.iter_bytes():
            pass


def test_sdk_count_tokens_and_models(fake: FakeGemini, url: str) -> None:
    client = _client(url)
    assert client.models.count_tokens(model=MODEL, contents="hello there").total_tokens >= 1
    names = [m.name for m in client.models.list()]
    assert names == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    model = client.models.get(model=MODEL)
    assert (model.input_token_limit, model.output_token_limit) == (1048576, 65536)
    with pytest.raises(errors.ClientError) as caught:
        client.models.get(model="nope")
    assert caught.value.code == 404
