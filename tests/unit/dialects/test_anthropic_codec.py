"""afk.dialects.anthropic: requests, responses, streams and errors, both ways and across
dialects, replayed on the recorded transcripts of PROTOCOLS.md §3 (tests/fixtures/anthropic)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event

from afk import ir
from afk.dialects import anthropic as codec
from afk.dialects import openai_chat as chat
from afk.errors import (
    AuthenticationFailed,
    GatewayError,
    InsufficientCredits,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    RateLimited,
    RequestTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from afk.sse import ServerSentEvent, encode
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.unit.dialects.transcripts import decode_stream, sse_events

_sse = sse_events
FIXTURES = FIXTURES_ROOT / "anthropic"
MESSAGE_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
                 b'"type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],'
                 b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,'
                 b'"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
                 b'"output_tokens":1}}}\n\n')



def _decode(events: list[ServerSentEvent]) -> list[ir.StreamEvent]:
    return decode_stream(codec.StreamDecoder(), events)


def _encode(events: list[ir.StreamEvent], model: str = "claude-sonnet-4-5",
            ) -> list[ServerSentEvent]:
    encoder = codec.StreamEncoder(model=model, include_usage=False)
    return [out for event in events for out in encoder.feed(event)]


def _wire(events: list[ServerSentEvent]) -> bytes:
    return b"".join(encode(e.data, e.event) for e in events)


def _sdk_message(events: list[ServerSentEvent]) -> Any:
    """What anthropic's own stream accumulator makes of our events."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        assert event.event == json.loads(event.data)["type"]  # the SDK needs `event:`
        snapshot = accumulate_event(event=json.loads(event.data), current_snapshot=snapshot,
                                    json_bufs=json_bufs)
    return snapshot


def _pinned(events: list[ir.StreamEvent]) -> list[ir.StreamEvent]:
    """Events with StreamStart.created (the decoder's clock) pinned."""
    return [dataclasses.replace(e, created=0) if isinstance(e, ir.StreamStart) else e
            for e in events]


# ================================================================ streams: decode
def test_text_transcript_decodes() -> None:
    events = _decode(_sse((FIXTURES / "stream_text.sse").read_bytes()))
    assert isinstance(events[0], ir.StreamStart)
    assert (events[0].id, events[0].model) == ("msg_01XFDUDY", "claude-sonnet-4-5")
    response = ir.collect(events)
    assert response.content == [ir.Text(text="Hello!")]
    assert response.stop_reason == "stop"
    assert response.usage == ir.Usage(input_tokens=12, output_tokens=3)
    assert isinstance(events[-1], ir.StreamEnd)


def test_tool_call_transcript_decodes() -> None:
    response = ir.collect(_decode(_sse((FIXTURES / "stream_tool_call.sse").read_bytes())))
    assert response.content == [ir.ToolCall(id="toolu_01T1x1fJ", name="get_weather",
                                            arguments='{"city": "Paris"}')]
    assert response.stop_reason == "tool_calls"
    assert response.usage == ir.Usage(input_tokens=380, output_tokens=42)


def test_thinking_then_mid_stream_error() -> None:
    decoder = codec.StreamDecoder()
    events = _sse(MESSAGE_START + (FIXTURES / "stream_thinking_error.sse").read_bytes())
    decoded: list[ir.StreamEvent] = []
    with pytest.raises(Overloaded) as info:
        for event in events:
            decoded += decoder.feed(event)
    assert info.value.message == "Overloaded"
    thinking = [e for e in decoded if isinstance(e, ir.ThinkingDelta)]
    assert thinking == [
        ir.ThinkingDelta(index=0, text="The user wants a greeting."),
        ir.ThinkingDelta(index=0, signature="EqQBCgIYAhIM1gbcDa9GJwZA2b3h", provider="anthropic")]


def test_message_delta_usage_overwrites_never_adds() -> None:
    start = MESSAGE_START.replace(b'"cache_read_input_tokens":0', b'"cache_read_input_tokens":40')
    frames = [
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 5}},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
         "usage": {"output_tokens": 9, "input_tokens": 20,
                   "output_tokens_details": {"thinking_tokens": 4}}},
        {"type": "message_stop"},
    ]
    events = _sse(start) + [ServerSentEvent(data=json.dumps(f), event=f["type"]) for f in frames]
    response = ir.collect(_decode(events))
    assert response.usage == ir.Usage(input_tokens=60, cached_input_tokens=40, output_tokens=9,
                                      reasoning_tokens=4)
    assert response.stop_reason == "length"


@pytest.mark.parametrize("cut", ["message_stop", "message_delta"])
def test_eof_before_message_stop_raises(cut: str) -> None:
    events = _sse((FIXTURES / "stream_text.sse").read_bytes())
    decoder = codec.StreamDecoder()
    for event in events[:[e.event for e in events].index(cut)]:
        decoder.feed(event)
    assert not decoder.done
    with pytest.raises(UpstreamError):
        decoder.finish()


@pytest.mark.parametrize("frames", [
    ["{not json"],
    ['{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'],
])
def test_malformed_or_out_of_order_raises(frames: list[str]) -> None:
    decoder = codec.StreamDecoder()
    with pytest.raises(UpstreamError):
        for frame in frames:
            decoder.feed(ServerSentEvent(data=frame))


def test_data_after_message_stop_raises() -> None:
    decoder = codec.StreamDecoder()
    for event in _sse((FIXTURES / "stream_text.sse").read_bytes()):
        decoder.feed(event)
    with pytest.raises(UpstreamError):
        decoder.feed(ServerSentEvent(data='{"type":"ping"}', event="ping"))


def test_passthrough_relays_everything() -> None:
    decoder = codec.StreamDecoder()
    for event in _sse((FIXTURES / "stream_text.sse").read_bytes()):
        decoder.feed(event)
        assert decoder.passthrough(event, include_usage=False) is event


# ================================================================ streams: encode
@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_call.sse"])
def test_stream_round_trip(name: str) -> None:
    transcript = _sse((FIXTURES / name).read_bytes())
    original = _decode(transcript)
    encoded = _encode(original)
    assert _pinned(_decode(_sse(_wire(encoded)))) == _pinned(original)
    # the same events as the transcript, but for its ping and its empty first json fragment
    assert [e.event for e in encoded] == [
        e.event for e in transcript
        if e.event != "ping" and '"partial_json":""' not in e.data]
    assert encoded[0].data == transcript[0].data  # message_start, usage and all


def test_encoded_stream_satisfies_sdk_accumulator() -> None:
    """An OpenAI-shaped IR stream (usage only at the end) read by anthropic's own code."""
    events: list[ir.StreamEvent] = [
        ir.StreamStart(id="chatcmpl-1", model="gpt-4.1-mini", created=1),
        ir.ThinkingDelta(index=0, text="Hmm."),
        ir.TextDelta(index=1, text="Let me "), ir.TextDelta(index=1, text="check."),
        ir.ToolCallStart(index=2, id="call_1", name="get_weather"),
        ir.ToolCallDelta(index=2, arguments='{"city"'),
        ir.ToolCallDelta(index=2, arguments=':"Paris"}'),
        ir.UsageUpdate(usage=ir.Usage(input_tokens=100, cached_input_tokens=60,
                                      output_tokens=20, reasoning_tokens=5)),
        ir.StreamEnd(stop_reason="tool_calls"),
    ]
    encoded = _encode(events, model="my-alias")
    start = json.loads(encoded[0].data)["message"]
    assert start["model"] == "my-alias"
    assert start["usage"]["input_tokens"] == 0  # not known yet at the start
    message = _sdk_message(encoded)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Hmm." and message.content[0].signature == ""
    assert message.content[1].text == "Let me check."
    assert message.content[2].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (40, 60, 20)
    indices = [json.loads(e.data).get("index") for e in encoded]
    assert [i for i in indices if i is not None] == sorted(i for i in indices if i is not None)


@pytest.mark.parametrize("text", [" word", 'say "hi" \\ ünï 🙂', "line\nbreak", "</script>"])
def test_text_deltas_are_written_as_the_generic_event_writes_them(text: str) -> None:
    """The text-delta fast path writes exactly the event the dict would have made."""
    encoder = codec.StreamEncoder(model="m", include_usage=False)
    encoder.feed(ir.StreamStart(id="msg_1", model="m", created=1))
    encoder.feed(ir.TextDelta(index=0, text="first"))  # opens the block
    [event] = encoder.feed(ir.TextDelta(index=0, text=text))
    generic = {"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": text}}
    assert event.event == "content_block_delta"
    assert event.data == json.dumps(generic, separators=(",", ":"), ensure_ascii=False)
    assert encoder.feed(ir.TextDelta(index=0, text="")) == []


def test_usage_known_early_goes_in_message_start() -> None:
    encoded = _encode([ir.StreamStart(id="x", model="gemini-2.5-flash", created=1),
                       ir.UsageUpdate(usage=ir.Usage(input_tokens=41, output_tokens=2)),
                       ir.TextDelta(index=0, text="Hi"), ir.StreamEnd(stop_reason="stop")])
    assert json.loads(encoded[0].data)["message"]["usage"]["input_tokens"] == 41


def test_gemini_call_signature_rides_a_thinking_block() -> None:
    encoded = _encode([
        ir.StreamStart(id="r", model="gemini-3-pro", created=1),
        ir.ToolCallStart(index=0, id="call_a", name="get_weather", signature="CiQBsig",
                         provider="gemini"),
        ir.ToolCallDelta(index=0, arguments='{"city":"Paris"}'),  # whole args, one fragment
        ir.StreamEnd(stop_reason="tool_calls")])
    message = _sdk_message(encoded)
    thinking, call = message.content
    assert thinking.type == "thinking" and thinking.signature == "afk1.gemini.CiQBsig"
    assert call.input == {"city": "Paris"}
    # the caller sends the turn back: the signature returns to the call, as Gemini's
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [b.to_dict() for b in message.content]}]}
    assistant = codec.parse_request(body).messages[1]
    assert assistant.content == [ir.ToolCall(id="call_a", name="get_weather",
                                             arguments='{"city":"Paris"}', signature="CiQBsig",
                                             provider="gemini")]


def test_encoder_rejects_illegal_order() -> None:
    encoder = codec.StreamEncoder(model="m", include_usage=False)
    with pytest.raises(ValueError):
        encoder.feed(ir.TextDelta(index=0, text="early"))
    encoder.feed(ir.StreamStart(id="x", model="m", created=1))
    encoder.feed(ir.StreamEnd(stop_reason="stop"))
    with pytest.raises(ValueError):
        encoder.feed(ir.TextDelta(index=0, text="late"))


# ================================================================ responses
def test_response_round_trip() -> None:
    body = json.loads((FIXTURES / "response_tool_use.json").read_text())
    response = codec.parse_response(body)
    assert response.content == [ir.Text(text="I'll check."), ir.ToolCall(
        id="toolu_01T1x1fJ", name="get_weather", arguments='{"city":"Paris"}')]
    assert response.stop_reason == "tool_calls"
    assert response.usage == ir.Usage(input_tokens=380, output_tokens=58)
    assert codec.render_response(response) == body


@pytest.mark.parametrize(("wire", "reason"), [
    ("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop_sequence"),
    ("tool_use", "tool_calls"), ("refusal", "refusal"), ("pause_turn", "pause"),
    ("model_context_window_exceeded", "length")])
def test_stop_reasons(wire: str, reason: str) -> None:
    assert codec.parse_response({"content": [], "stop_reason": wire}).stop_reason == reason


def test_usage_conversions() -> None:
    wire = {"input_tokens": 100, "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 30, "output_tokens": 50,
            "output_tokens_details": {"thinking_tokens": 10}}
    usage = codec.parse_usage(wire)
    assert usage == ir.Usage(input_tokens=150, cached_input_tokens=30, cache_write_tokens=20,
                             output_tokens=50, reasoning_tokens=10)
    assert codec.render_usage(usage) == wire
    # an OpenAI prompt of 82 with 60 cached is 22 uncached for an Anthropic caller
    openai_usage = chat.parse_usage({"prompt_tokens": 82, "completion_tokens": 17,
                                     "prompt_tokens_details": {"cached_tokens": 60}})
    assert codec.render_usage(openai_usage)["input_tokens"] == 22


def test_render_response_thinking_and_arguments() -> None:
    response = ir.Response(id="r", model="m", created=1, stop_reason="tool_calls",
                           usage=ir.Usage(), content=[
                               ir.Thinking(text="why", signature="g123", provider="gemini"),
                               ir.Thinking(text=""),  # nothing to show: omitted
                               ir.Thinking(text="", signature="enc", provider="openai",
                                           redacted=True),
                               ir.ToolCall(id="c1", name="f", arguments=""),
                               ir.ToolCall(id="c2", name="g", arguments='{"a": [1'),
                               ir.Refusal(text="I can't.")])
    assert codec.render_response(response)["content"] == [
        {"type": "thinking", "thinking": "why", "signature": "afk1.gemini.g123"},
        {"type": "redacted_thinking", "data": "afk1.openai.enc"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {"_raw": '{"a": [1'}},
        {"type": "text", "text": "I can't."}]


# ================================================================ requests
FULL_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 4096,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Weather in Paris? See:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0K"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQB"},
            {"type": "redacted_thinking", "data": "RED"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "18C"}]},
            {"type": "text", "text": "Thanks"}]},
    ],
    "tools": [{"name": "get_weather", "description": "Weather by city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "tool_choice": {"type": "auto"},
    "stop_sequences": ["END"],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "u-1"},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
}


def test_parse_full_request() -> None:
    request = codec.parse_request({**FULL_BODY, "stream": True, "temperature": 0.5,
                                   "tool_choice": {"type": "any",
                                                   "disable_parallel_tool_use": True}})
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool", "user"]
    assert request.messages[0].content == [ir.Text(text="Be brief.")]
    assert request.messages[1].content[1:] == [
        ir.Image(data="iVBORw0K", media_type="image/png"), ir.Image(url="https://x.test/a.jpg")]
    assert request.messages[2].content == [
        ir.Thinking(text="Use the tool.", signature="EqQB", provider="anthropic"),
        ir.Thinking(text="", signature="RED", provider="anthropic", redacted=True),
        ir.ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}')]
    assert request.messages[3].content == [
        ir.ToolResult(call_id="toolu_1", content=[ir.Text(text="18C")])]
    assert request.messages[4].content == [ir.Text(text="Thanks")]
    assert request.tool_choice == ir.ToolChoice(mode="required")
    assert request.parallel_tool_calls is False
    assert (request.max_output_tokens, request.stream, request.temperature) == (4096, True, 0.5)
    assert (request.thinking_budget, request.stop, request.user) == (2048, ["END"], "u-1")
    assert request.response_format == ir.ResponseFormat(type="json_schema",
                                                        schema={"type": "object"})


def test_request_round_trip() -> None:
    body = codec.render_request(codec.parse_request(FULL_BODY), model="claude-sonnet-4-5")
    assert body == FULL_BODY


def test_effort_and_role_system_messages() -> None:
    request = codec.parse_request({
        "model": "m", "max_tokens": 10, "system": "Top.", "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "Mid."},
                     {"role": "user", "content": "b"}]})
    assert request.reasoning_effort == "high" and request.thinking_budget is None
    body = codec.render_request(request, model="m")
    assert body["system"] == [{"type": "text", "text": "Top."}, {"type": "text", "text": "Mid."}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                             {"type": "text", "text": "b"}]}]
    assert body["output_config"] == {"effort": "high"}


@pytest.mark.parametrize(("body", "param"), [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
     "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]}, "messages[0].content[0]"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "data": "x"}}]}]},
     "messages[0].content[0].source.media_type"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"name": "f"}]}, "tools[0].input_schema"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tool_choice": {"type": "sometimes"}}, "tool_choice"),
])
def test_invalid_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        codec.parse_request(body)
    assert info.value.param == param
    assert info.value.status == 400


def test_count_tokens_needs_no_max_tokens() -> None:
    request = codec.parse_count_tokens({"model": "m", "messages": [
        {"role": "user", "content": "x"}]})
    assert request.max_output_tokens is None
    assert codec.render_count_tokens(14) == {"input_tokens": 14}


def test_web_search_maps_and_its_history_blocks_stay_with_anthropic() -> None:
    body = {"model": "m", "max_tokens": 10,
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3,
                       "allowed_domains": ["example.com"]}],
            "messages": [
                {"role": "user", "content": "News?"},
                {"role": "assistant", "content": [
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                     "input": {"query": "news"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                     "content": []},
                    {"type": "text", "text": "Here."}]}]}
    request = codec.parse_request(body)
    assert request.tools == []
    assert request.web_search == ir.WebSearch(max_uses=3, allowed_domains=["example.com"])
    assert request.messages[1].content == [ir.Text(text="Here.")]
    codec.check_translatable(body)  # web search maps; past results are Anthropic's alone
    rendered = codec.render_request(request, model="claude")
    assert rendered["tools"] == [{"type": "web_search_20250305", "name": "web_search",
                                  "max_uses": 3, "allowed_domains": ["example.com"]}]


def test_other_server_tools_parse_but_are_not_translatable() -> None:
    body = {"model": "m", "max_tokens": 10,
            "tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}],
            "messages": [{"role": "user", "content": "Read it."}]}
    assert codec.parse_request(body).tools == [ir.Tool(name="web_fetch")]
    with pytest.raises(InvalidRequest) as info:
        codec.check_translatable(body)
    assert "tools[0] (server tool 'web_fetch_20250910')" in info.value.message
    codec.check_translatable(FULL_BODY)  # nothing Anthropic-only there


def test_documents_map_where_they_can() -> None:
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                          "data": "JVBERi0"}}
    text = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                           "data": "Plain words."}}
    request = codec.parse_request({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": [pdf, text]}]})
    assert request.messages[0].content == [
        ir.Image(data="JVBERi0", media_type="application/pdf"), ir.Text(text="Plain words.")]
    assert codec.render_request(request, model="m")["messages"][0]["content"] == [
        pdf, {"type": "text", "text": "Plain words."}]
    with pytest.raises(InvalidRequest, match="file"):
        codec.check_translatable({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": [{"type": "document",
                                          "source": {"type": "file", "file_id": "f1"}}]}]})


def test_patch_request_changes_only_model_and_cap() -> None:
    body = {**FULL_BODY, "future_field": {"x": 1}}
    patched = codec.patch_request(body, model="claude-up", max_tokens=1000, stream_usage=True)
    assert patched == {**body, "model": "claude-up", "max_tokens": 1000,
                       "thinking": {"type": "enabled", "budget_tokens": 999}}
    assert body == {**FULL_BODY, "future_field": {"x": 1}}  # the caller's body is untouched
    unchanged = codec.patch_request(body, model="claude-up", max_tokens=8000, stream_usage=False)
    assert unchanged["thinking"] == FULL_BODY["thinking"]


# ================================================================ rendering for Anthropic
def _request(messages: list[ir.Message], **fields: Any) -> ir.Request:
    return ir.Request(model="x", messages=messages, max_output_tokens=fields.pop("max", 2000),
                      **fields)


def test_render_drops_sampling_and_fixes_thinking() -> None:
    tool = ir.Tool(name="f", parameters={"properties": {}})
    body = codec.render_request(_request(
        [ir.Message(role="user", content=[ir.Text(text="hi")])], temperature=0.2, top_p=0.9,
        top_k=5, thinking_budget=5000, tools=[tool], tool_choice=ir.ToolChoice(
            mode="tool", name="f"), response_format=ir.ResponseFormat(type="json_object"),
        stop=["x"]), model="claude-up")
    assert not {"temperature", "top_p", "top_k"} & body.keys()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1999}
    assert body["tool_choice"] == {"type": "auto"}  # forced tools are refused with thinking
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object",
                                                           "properties": {}}}]
    assert body["output_config"] == {"format": {"type": "json_schema",
                                                "schema": {"type": "object"}}}
    assert body["stop_sequences"] == ["x"] and body["max_tokens"] == 2000
    small = codec.render_request(_request([], thinking_budget=5000, max=800), model="m")
    assert "thinking" not in small  # no budget fits under 800 tokens


def test_render_answers_orphan_tool_calls_and_drops_empty_text() -> None:
    body = codec.render_request(_request([
        ir.Message(role="user", content=[ir.Text(text="go"), ir.Text(text="")]),
        ir.Message(role="assistant", content=[
            ir.Text(text=""), ir.ToolCall(id="a", name="f", arguments="{}"),
            ir.ToolCall(id="b", name="f", arguments="{}")]),
        ir.Message(role="tool", content=[ir.ToolResult(call_id="b", content=[])]),
        ir.Message(role="assistant", content=[ir.ToolCall(id="c", name="f", arguments="")]),
    ]), model="m")
    missing = [{"type": "text", "text": "No result was provided for this tool call."}]
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "is_error": True, "content": missing},
            {"type": "tool_result", "tool_use_id": "b"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "f",
                                           "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c", "is_error": True, "content": missing}]},
    ]
    assert body["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "go"}]}


# ================================================================ across dialects
def test_openai_chat_request_renders_for_anthropic() -> None:
    chat_body = {
        "model": "claude-x", "max_completion_tokens": 300, "temperature": 0.3,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call.1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
            {"role": "tool", "tool_call_id": "call.1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
            {"role": "developer", "content": "Use Celsius."},
            {"role": "user", "content": "Which is warmer?"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "parallel_tool_calls": False, "user": "u-7"}
    body = codec.render_request(chat.parse_request(chat_body), model="claude-up")
    first_id = codec.render_request(chat.parse_request(chat_body), model="m")["messages"][1][
        "content"][0]["id"]
    assert first_id.startswith("call_1_") and first_id != "call_1"  # distinct from a real call_1
    assert body == {
        "model": "claude-up", "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use Celsius."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": first_id, "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather",
                 "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": first_id,
                 "content": [{"type": "text", "text": "18C"}]},
                {"type": "tool_result", "tool_use_id": "call_2",
                 "content": [{"type": "text", "text": "24C"}]},
                {"type": "text", "text": "Which is warmer?"}]}],
        "metadata": {"user_id": "u-7"},
        "tools": [{"name": "get_weather", "description": "Weather by city",
                   "input_schema": {"type": "object",
                                    "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }


def test_anthropic_request_renders_for_openai_chat() -> None:
    body = {**FULL_BODY, "tool_choice": {"type": "tool", "name": "get_weather"}}
    del body["thinking"], body["output_config"]
    assert chat.render_request(codec.parse_request(body), model="gpt-4.1") == {
        "model": "gpt-4.1", "max_completion_tokens": 4096,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? See:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": "Thanks"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "user": "u-1", "stop": ["END"]}


def test_foreign_signatures_round_trip_and_never_reach_anthropic() -> None:
    response = ir.Response(id="r", model="gemini", created=1, stop_reason="stop",
                           usage=ir.Usage(), content=[
                               ir.Thinking(text="plan", signature="GSIG", provider="gemini"),
                               ir.Text(text="Done.")])
    history = codec.render_response(response)["content"]
    assert history[0]["signature"] == "afk1.gemini.GSIG"
    request = codec.parse_request({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "go"}, {"role": "assistant", "content": history},
        {"role": "user", "content": "more"}]})
    assert request.messages[1].content[0] == ir.Thinking(text="plan", signature="GSIG",
                                                         provider="gemini")
    rendered = codec.render_request(request, model="claude-up")["messages"][1]
    assert rendered == {"role": "assistant", "content": [{"type": "text", "text": "Done."}]}


# ================================================================ errors
@pytest.mark.parametrize(("error", "status", "kind"), [
    (InvalidRequest("bad", param="x"), 400, "invalid_request_error"),
    (RequestTooLarge("big"), 413, "invalid_request_error"),
    (AuthenticationFailed("who"), 401, "authentication_error"),
    (InsufficientCredits("poor"), 402, "billing_error"),
    (ModelNotFound("nope"), 404, "not_found_error"),
    (RateLimited("slow"), 429, "rate_limit_error"),
    (UpstreamError("broke"), 502, "api_error"),
    (Overloaded("busy"), 503, "overloaded_error"),
    (UpstreamTimeout("late"), 504, "timeout_error"),
])
def test_render_error(error: GatewayError, status: int, kind: str) -> None:
    assert error.status == status
    assert codec.render_error(error) == {"type": "error", "error": {
        "type": kind, "message": error.message}, "request_id": None}
    (event,) = codec.render_stream_error(error)
    assert event.event == "error"
    assert json.loads(event.data) == {"type": "error", "error": {"type": kind,
                                                                 "message": error.message}}


@pytest.mark.parametrize(("status", "cls"), [
    (400, InvalidRequest), (413, RequestTooLarge), (429, RateLimited), (529, Overloaded),
    (503, Overloaded), (500, UpstreamError)])
def test_error_from_body(status: int, cls: type[GatewayError]) -> None:
    body = {"type": "error", "error": {"type": "x", "message": "upstream says no"},
            "request_id": "req_1"}
    error = codec.error_from_body(body, status=status)
    assert type(error) is cls
    assert "upstream says no" in error.message
