"""afk.dialects.openai_chat: requests, responses, streams and errors, both ways,
replayed on the recorded transcripts of PROTOCOLS.md §1 (tests/fixtures/openai_chat)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from afk import ir
from afk.dialects import openai_chat as chat
from afk.errors import (
    AuthenticationFailed,
    GatewayError,
    InsufficientCredits,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    UpstreamError,
)
from afk.sse import ServerSentEvent, encode
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.unit.dialects.transcripts import decode_stream, sse_events

_sse = sse_events
FIXTURES = FIXTURES_ROOT / "openai_chat"


def _transcript(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()



def _decode(events: list[ServerSentEvent]) -> list[ir.StreamEvent]:
    return decode_stream(chat.StreamDecoder(), events)


def _reencode(events: list[ir.StreamEvent], *, include_usage: bool,
              model: str = "gpt-4.1-mini") -> list[ServerSentEvent]:
    encoder = chat.StreamEncoder(model=model, include_usage=include_usage)
    out: list[ServerSentEvent] = []
    for event in events:
        out += encoder.feed(event)
    return out


def _wire(events: list[ServerSentEvent]) -> bytes:
    return b"".join(encode(e.data, e.event) for e in events)


# ================================================================ streams
def test_text_transcript_decodes() -> None:
    events = _decode(_sse(_transcript("stream_text.sse")))
    assert isinstance(events[0], ir.StreamStart)
    assert (events[0].id, events[0].model, events[0].created) == (
        "chatcmpl-B9x1", "gpt-4.1-mini", 1764000000)
    assert isinstance(events[-1], ir.StreamEnd)
    response = ir.collect(events)
    assert response.content == [ir.Text(text="Hello!")]
    assert response.stop_reason == "stop"
    assert response.usage == ir.Usage(input_tokens=12, output_tokens=3)


def test_tool_call_transcript_decodes() -> None:
    events = _decode(_sse(_transcript("stream_tool_call.sse")))
    response = ir.collect(events)
    assert response.content == [ir.ToolCall(id="call_Qx7", name="get_weather",
                                             arguments='{"city":"Paris"}')]
    assert response.stop_reason == "tool_calls"
    assert response.usage == ir.Usage(input_tokens=12, output_tokens=17)
    # usage arrives before the end, the end comes last
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["usage", "end"]


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_call.sse"])
def test_stream_round_trip_with_usage(name: str) -> None:
    original = _decode(_sse(_transcript(name)))
    encoded = _reencode(original, include_usage=True)
    wire = _wire(encoded)
    assert wire.endswith(b"data: [DONE]\n\n")
    again = _decode(_sse(wire))
    assert again == original
    chunks = [json.loads(e.data) for e in encoded if e.data != "[DONE]"]
    assert all("usage" in c for c in chunks)
    # exactly one usage chunk: choices empty, after the finish chunk
    usage_chunks = [c for c in chunks if c["usage"] is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
    assert chunks[-1] is usage_chunks[0]
    assert chunks[-2]["choices"][0]["finish_reason"] is not None
    assert chunks[-2]["choices"][0]["delta"] == {}


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_call.sse"])
def test_stream_reencode_without_usage(name: str) -> None:
    original = _decode(_sse(_transcript(name)))
    encoded = _reencode(original, include_usage=False)
    chunks = [json.loads(e.data) for e in encoded if e.data != "[DONE]"]
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)
    assert encoded[-1].data == "[DONE]"
    again = _decode(_sse(_wire(encoded)))
    assert again == [e for e in original if not isinstance(e, ir.UsageUpdate)]


def test_reencoded_chunks_follow_the_wire_shape() -> None:
    encoded = _reencode(_decode(_sse(_transcript("stream_tool_call.sse"))), include_usage=True)
    chunks = [json.loads(e.data) for e in encoded if e.data != "[DONE]"]
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["id"], chunk["created"], chunk["model"]) == (
            "chatcmpl-B9x1", 1764000000, "gpt-4.1-mini")
    first_call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first_call == {"index": 0, "id": "call_Qx7", "type": "function",
                          "function": {"name": "get_weather", "arguments": ""}}


def test_encoder_reports_caller_model_name() -> None:
    encoded = _reencode(_decode(_sse(_transcript("stream_text.sse"))), include_usage=False,
                        model="my-alias")
    assert {json.loads(e.data)["model"] for e in encoded if e.data != "[DONE]"} == {"my-alias"}


def test_parallel_tool_calls_get_distinct_blocks() -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    frames = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "a", "type": "function",
             "function": {"name": "f", "arguments": ""}},
            {"index": 1, "id": "b", "type": "function",
             "function": {"name": "g", "arguments": ""}}]}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "function": {"arguments": "{\"y\":2}"}}]}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"x\":1}"}}]}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    events = [ServerSentEvent(data=json.dumps(f)) for f in frames]
    events.append(ServerSentEvent(data="[DONE]"))
    decoded = _decode(events)
    response = ir.collect(decoded)
    assert response.content == [ir.ToolCall(id="a", name="f", arguments='{"x":1}'),
                                ir.ToolCall(id="b", name="g", arguments='{"y":2}')]
    assert _decode(_sse(_wire(_reencode(decoded, include_usage=False, model="m")))) == decoded


def test_eof_without_done_raises() -> None:
    events = [e for e in _sse(_transcript("stream_text.sse")) if e.data != "[DONE]"]
    decoder = chat.StreamDecoder()
    for event in events:
        decoder.feed(event)
    assert not decoder.done
    with pytest.raises(UpstreamError):
        decoder.finish()


def test_mid_stream_error_raises() -> None:
    decoder = chat.StreamDecoder()
    first = _sse(_transcript("stream_text.sse"))[0]
    decoder.feed(first)
    error = ServerSentEvent(data=json.dumps({"error": {
        "message": "The server had an error", "type": "server_error", "param": None,
        "code": None}}))
    with pytest.raises(GatewayError) as info:
        decoder.feed(error)
    assert "The server had an error" in info.value.message
    assert info.value.status >= 500


def test_malformed_event_raises() -> None:
    with pytest.raises(UpstreamError):
        chat.StreamDecoder().feed(ServerSentEvent(data="{not json"))


def test_data_after_done_raises() -> None:
    decoder = chat.StreamDecoder()
    for event in _sse(_transcript("stream_text.sse")):
        decoder.feed(event)
    with pytest.raises(UpstreamError):
        decoder.feed(ServerSentEvent(data="{}"))


def test_passthrough_leaves_usage_out_unless_asked() -> None:
    decoder = chat.StreamDecoder()
    relayed = []
    for event in _sse(_transcript("stream_text.sse")):
        decoder.feed(event)
        relayed.append(decoder.passthrough(event, include_usage=False))
    # every event but the usage-only chunk (second to last) is relayed...
    assert [r is not None for r in relayed] == [True, True, True, True, False, True]
    # ...without a `usage` key, as OpenAI streams to a caller who did not ask for it
    chunks = [json.loads(r.data) for r in relayed[:4]]
    assert all("usage" not in c for c in chunks)
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "Hello", "!", None]
    decoder = chat.StreamDecoder()
    for event in _sse(_transcript("stream_text.sse")):
        decoder.feed(event)
        assert decoder.passthrough(event, include_usage=True) is event


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_passthrough_without_usage_keeps_the_rest_of_the_chunk(
        separators: tuple[str, str]) -> None:
    """The relayed chunk is the upstream's, only `usage` gone: its other members,
    their order and their text (an escaped quote, non-ASCII) unchanged."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": 'say "usage":null} ünï'},
                          "finish_reason": None}], "usage": None}
    decoder = chat.StreamDecoder()
    event = ServerSentEvent(data=json.dumps(chunk, separators=separators, ensure_ascii=False))
    decoder.feed(event)
    relayed = decoder.passthrough(event, include_usage=False)
    assert relayed is not None
    assert list(json.loads(relayed.data)) == ["id", "object", "created", "model", "choices"]
    assert json.loads(relayed.data)["choices"] == chunk["choices"]
    if separators == (",", ":"):  # as OpenAI writes it: the same text, less the member
        assert relayed.data == event.data.replace(',"usage":null}', "}")


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("text", [" word", 'say "content":"" \\ ünï 🙂', "a\nb"])
def test_text_chunks_are_written_as_the_generic_chunk_writes_them(
        text: str, include_usage: bool) -> None:
    """A text chunk's fast path (the JSON around the text written once) writes exactly
    the chunk the dict would have made, id, model and all."""
    encoder = chat.StreamEncoder(model='m "quoted"', include_usage=include_usage)
    encoder.feed(ir.StreamStart(id='chatcmpl-"content":""', model="up", created=7))
    [event] = encoder.feed(ir.TextDelta(index=0, text=text))
    generic: dict[str, object] = {
        "id": 'chatcmpl-"content":""', "object": "chat.completion.chunk", "created": 7,
        "model": 'm "quoted"', "choices": [{"index": 0, "delta": {"content": text},
                                           "logprobs": None, "finish_reason": None}]}
    if include_usage:
        generic["usage"] = None
    assert event.data == json.dumps(generic, separators=(",", ":"), ensure_ascii=False)


def test_encoder_refuses_events_after_end() -> None:
    encoder = chat.StreamEncoder(model="m", include_usage=False)
    encoder.feed(ir.StreamStart(id="x", model="m", created=1))
    encoder.feed(ir.StreamEnd(stop_reason="stop"))
    with pytest.raises(ValueError):
        encoder.feed(ir.TextDelta(index=0, text="late"))


# ================================================================ responses
def test_non_stream_tool_call_response() -> None:
    body = json.loads((FIXTURES / "response_tool_call.json").read_text())
    response = chat.parse_response(body)
    assert response.content == [ir.ToolCall(id="call_Qx7", name="get_weather",
                                             arguments='{"city":"Paris"}')]
    assert response.stop_reason == "tool_calls"
    assert response.usage == ir.Usage(input_tokens=82, output_tokens=17)
    rendered = chat.render_response(response)
    assert rendered["choices"][0]["message"]["content"] is None
    assert rendered["choices"][0]["message"]["tool_calls"] == \
        body["choices"][0]["message"]["tool_calls"]
    assert rendered["choices"][0]["finish_reason"] == "tool_calls"
    assert rendered["usage"] == body["usage"]
    assert (rendered["id"], rendered["created"], rendered["object"]) == (
        body["id"], body["created"], "chat.completion")
    assert chat.parse_response(rendered) == response


def test_usage_cached_and_reasoning_tokens() -> None:
    usage = chat.parse_usage({"prompt_tokens": 100, "completion_tokens": 40,
                              "total_tokens": 140,
                              "prompt_tokens_details": {"cached_tokens": 64},
                              "completion_tokens_details": {"reasoning_tokens": 30}})
    assert usage == ir.Usage(input_tokens=100, output_tokens=40, cached_input_tokens=64,
                             reasoning_tokens=30)
    assert chat.render_usage(usage)["total_tokens"] == 140


def test_response_without_choices_is_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        chat.parse_response({"id": "x", "choices": []})


# ================================================================ requests
def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini",
                            "messages": [{"role": "user", "content": "hi"}]}
    body.update(overrides)
    return body


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    (_body(model=""), "model"),
    (_body(messages=[]), "messages"),
    (_body(messages="hi"), "messages"),
    (_body(messages=[{"role": "wizard", "content": "hi"}]), "messages[0].role"),
    (_body(messages=[{"role": "user", "content": "a"}, {"content": "b"}]), "messages[1].role"),
    (_body(n=2), "n"),
    (_body(stream_options={"include_usage": True}), "stream_options"),
    (_body(stream=False, stream_options={"include_usage": True}), "stream_options"),
    (_body(max_tokens=0), "max_tokens"),
    (_body(max_tokens="100"), "max_tokens"),
    (_body(max_tokens=1.5), "max_tokens"),
    (_body(max_tokens=True), "max_tokens"),
    (_body(max_completion_tokens=-1), "max_completion_tokens"),
    (_body(stream="yes"), "stream"),
    (_body(tool_choice="sometimes"), "tool_choice"),
    (_body(response_format={"type": "yaml"}), "response_format"),
    (_body(tools=[{"type": "function", "function": {}}]), "tools[0]"),
    (_body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
])
def test_parse_request_validation(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat.parse_request(body)
    assert info.value.param == param
    assert info.value.status == 400


def test_parse_request_refuses_non_object() -> None:
    with pytest.raises(InvalidRequest):
        chat.parse_request([1, 2])


FULL_REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and the weather?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png",
                                                "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_Qx7", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_Qx7", "content": "18C and sunny"},
        {"role": "assistant", "content": "A cat; 18C in Paris."},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
        "strict": True}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "description": "the answer",
        "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "strict": True}},
    "max_completion_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END"],
    "seed": 7,
    "user": "u-1",
    "metadata": {"k": "v"},
}


def test_parse_render_round_trip_preserves_request() -> None:
    parsed = chat.parse_request(FULL_REQUEST)
    rendered = chat.render_request(parsed, model="gpt-4o-mini-2024-07-18")
    assert rendered["model"] == "gpt-4o-mini-2024-07-18"
    for name in ("tools", "tool_choice", "response_format", "max_completion_tokens",
                 "temperature", "top_p", "stop", "seed", "user", "metadata",
                 "parallel_tool_calls"):
        assert rendered[name] == FULL_REQUEST[name], name
    messages = rendered["messages"]
    assert [m["role"] for m in messages] == [m["role"] for m in FULL_REQUEST["messages"]]
    assert messages[0] == {"role": "system", "content": "You are terse."}
    assert messages[1]["content"] == FULL_REQUEST["messages"][1]["content"][:2] + [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    assert messages[2] == FULL_REQUEST["messages"][2]
    assert messages[3] == FULL_REQUEST["messages"][3]
    assert messages[4] == FULL_REQUEST["messages"][4]
    assert messages[5] == FULL_REQUEST["messages"][5]
    assert chat.parse_request({**rendered, "model": "gpt-4o-mini"}) == parsed


def test_parse_request_lifts_into_ir() -> None:
    parsed = chat.parse_request(FULL_REQUEST)
    assert parsed.max_output_tokens == 256
    assert parsed.tool_choice == ir.ToolChoice(mode="tool", name="get_weather")
    assert parsed.response_format.type == "json_schema"
    assert parsed.response_format.name == "answer"
    image = parsed.messages[1].content[2]
    assert (image.data, image.media_type, image.url) == ("iVBORw0KGgo=", "image/png", None)
    assert parsed.messages[3].content == [ir.ToolResult(
        call_id="call_Qx7", content=[ir.Text(text="18C and sunny")])]
    assert chat.parse_request(_body(stop="END")).stop == ["END"]
    assert chat.parse_request(_body(max_tokens=5)).max_output_tokens == 5
    dev = chat.parse_request(_body(messages=[{"role": "developer", "content": "x"}]))
    assert dev.messages[0].role == "system"


def test_stream_usage_flag() -> None:
    assert chat.parse_request(_body(stream=True, stream_options={"include_usage": True})
                              ).stream_usage
    assert not chat.parse_request(_body(stream=True)).stream_usage


def test_render_request_streams_with_usage() -> None:
    rendered = chat.render_request(chat.parse_request(_body(stream=True)), model="m")
    assert rendered["stream"] is True
    assert rendered["stream_options"] == {"include_usage": True}


def test_render_request_keeps_user_name() -> None:
    """Bug: the IR carries Message.name (parse_request fills it), but
    _render_messages never writes it back, so a name OpenAI itself accepts
    is dropped on the IR path."""
    body = _body(messages=[{"role": "user", "content": "hi", "name": "alice"}])
    rendered = chat.render_request(chat.parse_request(body), model="m")
    assert rendered["messages"][0].get("name") == "alice"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_patch_request_patches_the_field_the_caller_used(field: str) -> None:
    body = _body(**{field: 5000}, logprobs=True, x_unknown={"kept": [1, 2]},
                 stream=True, stream_options={"include_obfuscation": False})
    patched = chat.patch_request(body, model="upstream-id", max_tokens=300, stream_usage=True)
    assert patched["model"] == "upstream-id"
    assert patched[field] == 300
    missing = "max_completion_tokens" if field == "max_tokens" else "max_tokens"
    assert missing not in patched
    assert patched["x_unknown"] == {"kept": [1, 2]} and patched["logprobs"] is True
    assert patched["messages"] == body["messages"]
    assert patched["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert body["model"] == "gpt-4o-mini" and body[field] == 5000  # caller's body untouched


def test_patch_request_without_max_tokens_uses_max_completion_tokens() -> None:
    patched = chat.patch_request(_body(), model="m", max_tokens=42, stream_usage=True)
    assert patched["max_completion_tokens"] == 42
    assert "max_tokens" not in patched
    assert "stream_options" not in patched  # not streaming: no stream options


# ================================================================ errors
@pytest.mark.parametrize(("error", "type_", "code", "param"), [
    (InvalidRequest("bad", param="messages"), "invalid_request_error", None, "messages"),
    (AuthenticationFailed("nope"), "invalid_request_error", "invalid_api_key", None),
    (ModelNotFound("gpt-9"), "invalid_request_error", "model_not_found", "model"),
    (InsufficientCredits("poor"), "insufficient_quota", "insufficient_credits", None),
    (InsufficientCredits("cap", code="cap_exceeded"), "insufficient_quota", "cap_exceeded",
     None),
    (RateLimited("slow down"), "requests", "rate_limit_exceeded", None),
    (UpstreamError("boom"), "server_error", "upstream_error", None),
])
def test_render_error(error: GatewayError, type_: str, code: str | None,
                      param: str | None) -> None:
    assert chat.render_error(error) == {"error": {"message": error.message, "type": type_,
                                                  "param": param, "code": code}}


def test_render_stream_error_is_one_data_event() -> None:
    events = chat.render_stream_error(InvalidRequest("bad"))
    assert len(events) == 1 and events[0].event is None
    assert json.loads(events[0].data)["error"]["message"] == "bad"


@pytest.mark.parametrize(("status", "kind"), [(429, RateLimited), (400, InvalidRequest),
                                              (500, UpstreamError)])
def test_error_from_body(status: int, kind: type[GatewayError]) -> None:
    error = chat.error_from_body({"error": {"message": "m1", "type": "t", "param": "p",
                                            "code": "c"}}, status=status)
    assert isinstance(error, kind)
    assert "m1" in error.message
