"""afk.dialects.gemini: requests, responses, streams and errors, both ways, replayed on
the recorded transcripts and bodies of PROTOCOLS.md §4 (tests/fixtures/gemini), and
across dialects with openai_chat."""

from __future__ import annotations

import json
from typing import Any

import pytest

from afk import ir
from afk.dialects import gemini
from afk.dialects import openai_chat as chat
from afk.errors import (
    AuthenticationFailed,
    CredentialsRefused,
    InsufficientCredits,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from afk.sse import ServerSentEvent, encode
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.unit.dialects.transcripts import decode_stream, sse_events

_sse = sse_events
FIXTURES = FIXTURES_ROOT / "gemini"
SIGNATURE = "CiQBc2lnLW9wYXF1ZS1ieXRlcy1kZW1v"


def _bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _json(name: str) -> Any:
    return json.loads(_bytes(name))



def _decode(events: list[ServerSentEvent]) -> list[ir.StreamEvent]:
    return decode_stream(gemini.StreamDecoder(), events)


def _encode(events: list[ir.StreamEvent], model: str = "gemini-2.5-flash") -> bytes:
    encoder = gemini.StreamEncoder(model=model, include_usage=False)
    return b"".join(encode(e.data, e.event) for event in events for e in encoder.feed(event))


def _without_created(events: list[ir.StreamEvent]) -> list[ir.StreamEvent]:
    return [e for e in events if not isinstance(e, ir.StreamStart)]


# ================================================================ streams
def test_text_transcript_decodes() -> None:
    events = _decode(_sse(_bytes("stream_text.sse")))
    start = events[0]
    assert isinstance(start, ir.StreamStart)
    assert (start.id, start.model) == ("mKqOaN7d", "gemini-2.5-flash")
    assert [e.type for e in events] == ["start", "text_delta", "usage", "text_delta", "usage",
                                        "end"]
    response = ir.collect(events)
    assert response.content == [ir.Text(text="Hello!")]
    assert response.stop_reason == "stop"
    assert response.usage == ir.Usage(input_tokens=5, output_tokens=2)


def test_tool_call_transcript_decodes_with_signature_and_thought_usage() -> None:
    response = ir.collect(_decode(_sse(_bytes("stream_tool_call.sse"))))
    [call] = response.content
    assert isinstance(call, ir.ToolCall)
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_") and call.id.replace("_", "").isalnum()
    assert (call.signature, call.provider) == (SIGNATURE, "gemini")
    assert response.stop_reason == "tool_calls"  # Gemini said STOP; the call decides
    # output = candidates + thoughts; total 104 = 41 + 15 + 48
    assert response.usage == ir.Usage(input_tokens=41, output_tokens=63, reasoning_tokens=48)
    assert response.usage.total_tokens == 104


def test_text_stream_round_trip_is_byte_identical() -> None:
    """Decode then encode gives back the recorded transcript, byte for byte: one event
    per delta, usage on each, the finishReason on the last text."""
    original = _bytes("stream_text.sse")
    assert _encode(_decode(_sse(original))) == original


def test_tool_call_stream_round_trip() -> None:
    """The same, except that the call now carries the id the IR gave it, so a caller
    that sends it back pairs its response with it."""
    original = _bytes("stream_tool_call.sse")
    events = _decode(_sse(original))
    [again] = _sse(_encode(events))
    body = json.loads(again.data)
    call = body["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call.pop("id") == ir.collect(events).content[0].id
    assert body == json.loads(_sse(original)[0].data)


def test_crlf_transcript_decodes_the_same() -> None:
    crlf = _bytes("stream_text.sse").replace(b"\n", b"\r\n")
    assert _without_created(_decode(_sse(crlf))) == _without_created(
        _decode(_sse(_bytes("stream_text.sse"))))


def test_stream_decode_ids_match_the_non_stream_parse() -> None:
    body = json.loads(_sse(_bytes("stream_tool_call.sse"))[0].data)
    streamed = ir.collect(_decode(_sse(_bytes("stream_tool_call.sse"))))
    assert streamed.content == gemini.parse_response(body).content


def test_truncated_stream_is_an_error() -> None:
    decoder = gemini.StreamDecoder()
    decoder.feed(_sse(_bytes("stream_text.sse"))[0])
    assert not decoder.done
    with pytest.raises(UpstreamError, match="ended before"):
        decoder.finish()


def test_mid_stream_error_raises_the_mapped_error() -> None:
    decoder = gemini.StreamDecoder()
    decoder.feed(_sse(_bytes("stream_text.sse"))[0])
    error = {"error": {"code": 503, "message": "The model is overloaded.",
                       "status": "UNAVAILABLE"}}
    with pytest.raises(Overloaded, match="overloaded"):
        decoder.feed(ServerSentEvent(data=json.dumps(error)))


def test_usage_is_cumulative_and_a_chunk_without_usage_keeps_it() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Hm", "thought": True}],
                                     "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 0,
                           "totalTokenCount": 19, "thoughtsTokenCount": 10,
                           "cachedContentTokenCount": 4}, "responseId": "r1"},
        {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"},
                         "index": 0}], "responseId": "r1"},
        {"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "c2ln"}],
                                     "role": "model"}, "finishReason": "MAX_TOKENS",
                         "index": 0}],
         "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3,
                           "totalTokenCount": 24, "thoughtsTokenCount": 12,
                           "cachedContentTokenCount": 4}, "responseId": "r1"},
    ]
    events = _decode([ServerSentEvent(data=json.dumps(c)) for c in chunks])
    response = ir.collect(events)
    assert response.usage == ir.Usage(input_tokens=9, output_tokens=15, cached_input_tokens=4,
                                      reasoning_tokens=12)
    assert response.stop_reason == "length"
    assert response.content == [
        ir.Thinking(text="Hm"), ir.Text(text="Hi"),
        ir.Thinking(text="", signature="c2ln", provider="gemini")]
    # Re-encoded for a Gemini caller: thought text never leaks; the signature survives.
    wire = [json.loads(e.data) for e in _sse(_encode(events))]
    parts = [p for c in wire for p in c["candidates"][0]["content"]["parts"]]
    assert parts == [{"text": "Hi"}, {"text": "", "thoughtSignature": "c2ln"}]
    assert wire[-1]["usageMetadata"] == {"promptTokenCount": 9, "candidatesTokenCount": 3,
                                         "totalTokenCount": 24, "cachedContentTokenCount": 4,
                                         "thoughtsTokenCount": 12}


def test_prompt_blocked_in_a_stream_ends_with_content_filter() -> None:
    events = _decode([ServerSentEvent(data=_bytes("response_blocked.json").decode())])
    assert ir.collect(events).stop_reason == "content_filter"


def test_malformed_function_call_is_an_upstream_error() -> None:
    chunk = {"candidates": [{"content": {"role": "model"},
                             "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}]}
    with pytest.raises(UpstreamError, match="MALFORMED_FUNCTION_CALL"):
        gemini.StreamDecoder().feed(ServerSentEvent(data=json.dumps(chunk)))


def test_openai_stream_reencodes_for_a_gemini_caller() -> None:
    """Cross-dialect: fragmented OpenAI tool-call arguments are sent whole, once."""
    raw = (FIXTURES_ROOT / "openai_chat"
           / "stream_tool_call.sse").read_bytes()
    decoder = chat.StreamDecoder()
    events = [e for event in _sse(raw) for e in decoder.feed(event)]
    wire = [json.loads(e.data) for e in _sse(_encode(events, model="gpt-4.1-mini"))]
    assert len(wire) == 1
    candidate = wire[0]["candidates"][0]
    assert candidate["content"]["parts"] == [{"functionCall": {
        "name": "get_weather", "args": {"city": "Paris"}, "id": "call_Qx7"}}]
    assert candidate["finishReason"] == "STOP"
    assert wire[0]["usageMetadata"] == {"promptTokenCount": 12, "candidatesTokenCount": 17,
                                        "totalTokenCount": 29}
    assert wire[0]["modelVersion"] == "gpt-4.1-mini"


def test_encoder_rejects_events_after_the_end() -> None:
    encoder = gemini.StreamEncoder(model="m", include_usage=True)
    encoder.feed(ir.StreamStart(id="r", model="m", created=0))
    encoder.feed(ir.StreamEnd(stop_reason="stop"))
    with pytest.raises(ValueError):
        encoder.feed(ir.TextDelta(index=0, text="late"))


def test_passthrough_relays_everything() -> None:
    event = ServerSentEvent(data="{}")
    assert gemini.StreamDecoder().passthrough(event, include_usage=False) is event


# ================================================================ responses
def test_text_response_round_trips() -> None:
    body = _json("response_text.json")
    response = gemini.parse_response(body)
    assert response.content == [ir.Text(text="Hello!")]
    assert (response.id, response.model, response.stop_reason) == (
        "mKqOaN7d", "gemini-2.5-flash", "stop")
    rendered = gemini.render_response(response)
    del body["usageMetadata"]["promptTokensDetails"]  # per-modality detail is not kept
    assert rendered == body


def test_thinking_tool_call_response() -> None:
    response = gemini.parse_response(_json("response_thinking_tool_call.json"))
    thought, text, weather, clock = response.content
    assert thought == ir.Thinking(text="The user wants Paris weather.")
    assert text == ir.Text(text="Checking.")
    assert isinstance(weather, ir.ToolCall) and isinstance(clock, ir.ToolCall)
    assert (weather.signature, weather.provider) == (SIGNATURE, "gemini")
    assert (clock.signature, clock.provider) == (None, None)
    assert weather.id != clock.id
    assert gemini.parse_response(_json("response_thinking_tool_call.json")).content[2].id \
        == weather.id  # stable
    assert response.stop_reason == "tool_calls"
    assert response.usage == ir.Usage(input_tokens=41, output_tokens=63,
                                      cached_input_tokens=32, reasoning_tokens=48)
    # ... and to an OpenAI caller: no thought text, calls with ids, usage incl. reasoning.
    body = chat.render_response(response)
    message = body["choices"][0]["message"]
    assert message["content"] == "Checking."
    assert [c["id"] for c in message["tool_calls"]] == [weather.id, clock.id]
    assert body["usage"]["completion_tokens"] == 63
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 48}
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_rendered_response_keeps_the_gemini_shape() -> None:
    response = gemini.parse_response(_json("response_thinking_tool_call.json"))
    body = gemini.render_response(response)
    parts = body["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"},
                          "id": response.content[2].id}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"},
                          "id": response.content[3].id}},
    ]
    assert body["usageMetadata"] == {"promptTokenCount": 41, "candidatesTokenCount": 15,
                                     "totalTokenCount": 104, "cachedContentTokenCount": 32,
                                     "thoughtsTokenCount": 48}


def test_blocked_prompt_is_content_filter() -> None:
    response = gemini.parse_response(_json("response_blocked.json"))
    assert (response.content, response.stop_reason) == ([], "content_filter")
    body = gemini.render_response(response)
    assert body["candidates"][0] == {"content": {"role": "model"}, "finishReason": "SAFETY",
                                     "index": 0}


@pytest.mark.parametrize(("reason", "stop"), [
    ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("BLOCKLIST", "content_filter"),
    ("SPII", "content_filter"), ("OTHER", "error")])
def test_finish_reasons(reason: str, stop: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"},
                            "finishReason": reason, "index": 0}]}
    assert gemini.parse_response(body).stop_reason == stop


def test_no_candidates_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        gemini.parse_response({"usageMetadata": {}})


def test_other_providers_signatures_are_wrapped_for_gemini_callers() -> None:
    response = ir.Response(id="r", model="claude", created=0, stop_reason="tool_calls",
                           usage=ir.Usage(), content=[
                               ir.Thinking(text="secret", signature="anth", provider="anthropic"),
                               ir.ToolCall(id="toolu_1", name="f", arguments="",
                                           signature="opaque", provider="anthropic")])
    [part] = gemini.render_response(response)["candidates"][0]["content"]["parts"]
    assert part == {"functionCall": {"name": "f", "args": {}, "id": "toolu_1"},
                    "thoughtSignature": "afk1.anthropic.opaque"}
    # The caller sends it back: it is the issuer's again, and never reaches Gemini.
    request = gemini.parse_request({"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [part]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
    ]}, model="m", stream=False)
    call = request.messages[1].content[0]
    assert isinstance(call, ir.ToolCall)
    assert (call.id, call.signature, call.provider) == ("toolu_1", "opaque", "anthropic")
    assert request.messages[2].content[0].call_id == "toolu_1"
    rendered = gemini.render_request(request, model="m")
    assert "thoughtSignature" not in rendered["contents"][1]["parts"][0]


# ================================================================ requests
def test_full_request_parses() -> None:
    request = gemini.parse_request(_json("request_full.json"), model="gemini-2.5-flash",
                                   stream=True)
    assert (request.model, request.stream, request.max_output_tokens) == (
        "gemini-2.5-flash", True, 100)
    system, user, assistant, tool = request.messages
    assert system == ir.Message(role="system", content=[ir.Text(text="be nice")])
    assert user.content == [ir.Text(text="hi"),
                            ir.Image(data="iVBORw==", media_type="image/png"),
                            ir.Image(url="gs://b/x.pdf", media_type="application/pdf")]
    [call] = assistant.content
    assert call == ir.ToolCall(id="call_get_weather_0", name="get_weather",
                               arguments='{"city":"Paris"}', signature="c2ln",
                               provider="gemini")
    assert tool.content == [ir.ToolResult(call_id=call.id, name="get_weather",
                                          content=[ir.Text(text='{"temp":20}')])]
    assert request.tools == [ir.Tool(name="get_weather", description="d", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})]
    assert request.tool_choice == ir.ToolChoice(mode="tool", name="get_weather")
    assert (request.temperature, request.top_p, request.top_k, request.stop) == (
        0.5, 0.9, 40, ["END"])
    assert request.response_format == ir.ResponseFormat(
        type="json_schema", schema={"type": "object", "properties": {"a": {"type": "string"}}})
    assert request.thinking_budget == 1024


def test_snake_case_request_parses_like_camel_case_and_keeps_caller_names() -> None:
    """google-genai sends snake_case nested keys; argument and property names stay."""
    request = gemini.parse_request(_json("request_snake_case.json"), model="m", stream=False)
    user, assistant = request.messages[1:3]
    assert user.content[1] == ir.Image(data="iVBORw==", media_type="image/png")
    assert user.content[2] == ir.Image(url="gs://b/x.pdf", media_type="application/pdf")
    assert assistant.content[0].arguments == '{"city_name":"Paris"}'
    assert request.messages[3].content[0].content == [ir.Text(text='{"temp_c":20}')]
    weather, f2 = request.tools
    assert weather.parameters == {"type": "object", "required": ["city_name"], "properties": {
        "city_name": {"type": ["string", "null"], "maxLength": 3}}}
    assert f2.parameters == {"type": "object", "additionalProperties": False,
                             "properties": {"a_b": {"type": ["string", "null"]}}}
    assert request.response_format.schema == {"type": "object",
                                              "properties": {"x_y": {"type": "string"}}}
    assert (request.thinking_budget, request.reasoning_effort) == (1024, "low")


def test_request_round_trips_through_the_ir() -> None:
    body = _json("request_parallel_calls.json")
    request = gemini.parse_request(body, model="m", stream=False)
    rendered = gemini.render_request(request, model="m")
    # The same history, with responses in call order (Gemini pairs them by position).
    responses = body["contents"][2]["parts"]
    assert rendered["contents"][2]["parts"] == [responses[0], responses[2], responses[1],
                                                responses[3]]
    assert rendered["contents"][:2] == body["contents"][:2]
    assert rendered["systemInstruction"] == body["systemInstruction"]
    assert rendered["tools"] == body["tools"]


def test_gemini_request_renders_to_openai_chat_with_matching_ids() -> None:
    request = gemini.parse_request(_json("request_parallel_calls.json"), model="m",
                                   stream=False)
    body = chat.render_request(request, model="gpt-4.1-mini")
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool",
                                             "tool", "user"]
    ids = [c["id"] for c in messages[2]["tool_calls"]]
    assert ids == ["call_get_weather_0", "call_get_weather_1", "call_get_time_2"]
    # Responses pair with calls by name, in order: Paris=20, time, Rome=25.
    assert [(m["tool_call_id"], json.loads(m["content"])) for m in messages[3:6]] == [
        ("call_get_weather_0", {"temp": 20}), ("call_get_time_2", {"result": "12:00"}),
        ("call_get_weather_1", {"temp": 25})]
    assert messages[6] == {"role": "user", "content": "Thanks, summarise."}


OPENAI_HISTORY = {
    "model": "gemini-2.5-flash",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "developer", "content": "use metric"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_A", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_B", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            {"id": "call_C", "type": "function", "function": {"name": "noop", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_B", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_A", "content": '{"temp":20}'},
        {"role": "user", "content": "and?"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": ["string", "null"]}},
        "additionalProperties": False}, "strict": True}}],
    "tool_choice": "required", "stop": ["X"], "max_completion_tokens": 50,
    "reasoning_effort": "low", "response_format": {"type": "json_object"},
}


def test_openai_chat_history_renders_to_a_valid_gemini_body() -> None:
    body = gemini.render_request(chat.parse_request(OPENAI_HISTORY), model="gemini-2.5-flash")
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "use metric"}]}
    contents = body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert all(c["parts"] for c in contents)  # never parts: []
    assert [p["functionCall"] for p in contents[1]["parts"]] == [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_weather", "args": {"city": "Rome"}}, {"name": "noop", "args": {}}]
    # One merged turn: a response per call, in call order, names recovered by id,
    # the unanswered call given an error result, then the user's text.
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
        {"functionResponse": {"name": "noop",
                              "response": {"error": "No result was provided for this call."}}},
        {"text": "and?"},
    ]
    # JSON Schema goes out unchanged through parametersJsonSchema.
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["parametersJsonSchema"] == OPENAI_HISTORY["tools"][0]["function"][
        "parameters"]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {
        "maxOutputTokens": 50, "stopSequences": ["X"], "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": False}}


def test_forced_tool_and_json_schema_render() -> None:
    request = ir.Request(model="m", messages=[ir.Message(role="user", content=[
        ir.Text(text="hi"), ir.Image(url="data:image/jpeg;base64,AAAA")])],
        tool_choice=ir.ToolChoice(mode="tool", name="f"), thinking_budget=0,
        response_format=ir.ResponseFormat(type="json_schema", schema={"type": "object"}))
    body = gemini.render_request(request, model="m")
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/jpeg",
                                                              "data": "AAAA"}}
    assert body["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["f"]}}
    assert body["generationConfig"] == {
        "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": False}}


def test_gemini_thoughts_go_back_to_gemini_only() -> None:
    assistant = ir.Message(role="assistant", content=[
        ir.Thinking(text="plan", signature="g1", provider="gemini"),
        ir.Thinking(text="", signature="g2", provider="gemini"),
        ir.Text(text="ok"),
        ir.Thinking(text="claude thoughts", signature="a1", provider="anthropic"),
        ir.Thinking(text="", signature="g3", provider="gemini")])
    request = ir.Request(model="m", messages=[
        ir.Message(role="user", content=[ir.Text(text="hi")]), assistant])
    parts = gemini.render_request(request, model="m")["contents"][1]["parts"]
    assert parts == [{"text": "plan", "thought": True, "thoughtSignature": "g1"},
                     {"text": "ok", "thoughtSignature": "g2"},
                     {"text": "", "thoughtSignature": "g3"}]


@pytest.mark.parametrize(("body", "param"), [
    ({}, "contents"),
    ({"contents": []}, "contents"),
    ({"contents": [{"role": "user", "parts": []}]}, "contents[0].parts"),
    ({"contents": [{"role": "user"}]}, "contents[0].parts"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}},
     "generationConfig.candidateCount"),
    ({"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"max_output_tokens": 0}},
     "generationConfig.maxOutputTokens"),
    # Malformed, as Gemini itself would say; well-formed Gemini-only features are not
    # refused here (see the passthrough leniency tests below).
    ({"contents": [{"parts": [{"text": "x"}]}], "tools": [{}]}, "tools[0]"),
    ({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": {}}]},
     "tools[0].functionDeclarations"),
    ({"contents": [{"parts": [{}]}]}, "contents[0].parts[0]"),
    ({"contents": [{"parts": [{"text": None}]}]}, "contents[0].parts[0]"),
])
def test_invalid_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.parse_request(body, model="m", stream=False)
    assert caught.value.param == param
    assert caught.value.status == 400


# ---------------------------------------------------------------- passthrough leniency
def test_gemini_only_features_parse_for_a_passthrough() -> None:
    """A Gemini caller on a Gemini model is relayed verbatim and the IR only quotes
    it: hosted tools, code-execution parts, cachedContent, audio output and safety
    settings are left out of the IR, not refused."""
    request = gemini.parse_request(_json("request_gemini_only.json"), model="gemini-2.5-flash",
                                   stream=False)
    assert request.tools == [ir.Tool(name="get_weather", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}})]
    # The model turn held only code-execution parts: no empty assistant message.
    assert request.messages == [
        ir.Message(role="user", content=[ir.Text(text="Sum 0..9 in Python, then read me "
                                                      "the news.")]),
        ir.Message(role="user", content=[ir.Text(text="And the news?")])]
    assert request.max_output_tokens == 200
    counted = gemini.parse_count_tokens({"generateContentRequest": _json(
        "request_gemini_only.json")}, model="gemini-2.5-flash")
    assert counted.messages == request.messages


def test_check_translatable_names_every_gemini_only_feature() -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.check_translatable(_json("request_gemini_only.json"))
    error = caught.value
    assert (error.status, error.param) == (400, "cachedContent")
    for feature in ("cachedContent (cachedContents/abc123)",
                    "generationConfig.responseModalities (AUDIO)",
                    "generationConfig.speechConfig",
                    "tools[1] (codeExecution)", "tools[2] (urlContext)",
                    "contents[1].parts[0] (executableCode)",
                    "contents[1].parts[1] (codeExecutionResult)"):
        assert feature in error.message
    assert "only Gemini models can serve this" in error.message
    assert "safetySettings" not in error.message
    assert "googleSearch" not in error.message  # the IR's web search: it translates


def test_google_search_is_the_irs_web_search_both_ways() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "News?"}]}],
            "tools": [{"google_search": {}}]}
    request = gemini.parse_request(body, model="m", stream=False)
    gemini.check_translatable(body)
    assert request.web_search == ir.WebSearch() and request.tools == []
    assert gemini.render_request(request, model="m")["tools"] == [{"googleSearch": {}}]


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"functionDeclarations": [{"name": "f"}], "codeExecution": {}}]}, "tools[0]"),
    ({"cached_content": "cachedContents/x"}, "cachedContent"),
    ({"generation_config": {"response_modalities": ["TEXT", "IMAGE"]}},
     "generationConfig.responseModalities"),
    ({"generationConfig": {"speechConfig": {"languageCode": "en-US"}}},
     "generationConfig.speechConfig"),
    ({"generationConfig": {"responseMimeType": "text/x.enum",
                           "responseSchema": {"type": "STRING", "enum": ["a", "b"]}}},
     "generationConfig.responseMimeType"),
])
def test_check_translatable_names_the_field(body: dict[str, Any], param: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}], **body}
    gemini.parse_request(body, model="m", stream=False)  # a passthrough takes it
    with pytest.raises(InvalidRequest) as caught:
        gemini.check_translatable(body)
    assert caught.value.param == param


def test_check_translatable_skips_history_parts_it_cannot_carry() -> None:
    body = {"contents": [
        {"role": "user", "parts": [{"text": "x"}]},
        {"role": "model", "parts": [{"text": "ok"}, {"executableCode": {"code": "1"}}]},
        {"role": "user", "parts": [{"text": "y"}]}]}
    request = gemini.parse_request(body, model="m", stream=False)
    assert request.messages[1] == ir.Message(role="assistant", content=[ir.Text(text="ok")])
    with pytest.raises(InvalidRequest) as caught:
        gemini.check_translatable(body)
    assert caught.value.param == "contents[1].parts[1]"


@pytest.mark.parametrize("name", ["request_full.json", "request_parallel_calls.json",
                                  "request_snake_case.json"])
def test_translatable_requests_pass_the_check(name: str) -> None:
    gemini.check_translatable(_json(name))


def test_safety_settings_and_text_modality_are_translatable() -> None:
    """safetySettings only tune Gemini's own filters; another provider answers under
    its own policy, so they are dropped rather than refused."""
    gemini.check_translatable({
        "contents": [{"parts": [{"text": "x"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH",
                            "threshold": "BLOCK_ONLY_HIGH"}],
        "generationConfig": {"responseModalities": ["TEXT"], "responseMimeType": "text/plain",
                             "presencePenalty": 0.5}})


def test_check_translatable_still_refuses_malformed_bodies() -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.check_translatable({"contents": [{"parts": [{}]}]})
    assert caught.value.param == "contents[0].parts[0]"


def test_code_execution_answer_parses_for_metering() -> None:
    """A passthrough relays a code-execution answer verbatim but still parses it to
    meter it: its executableCode parts must not fail the call."""
    response = gemini.parse_response(_json("response_code_execution.json"))
    assert response.content == [ir.Text(text="Let me compute it."),
                                 ir.Text(text="The sum is 45.")]
    assert response.stop_reason == "stop"
    assert response.usage == ir.Usage(input_tokens=32, output_tokens=30)
    events = _decode([ServerSentEvent(data=_bytes("response_code_execution.json").decode())])
    assert ir.collect(events).content == [ir.Text(text="Let me compute it.The sum is 45.")]


@pytest.mark.parametrize(("request_", "param"), [
    (ir.Request(model="m", messages=[ir.Message(role="user", content=[
        ir.Image(url="https://example.com/cat.png")])]), "messages"),
    (ir.Request(model="m", messages=[ir.Message(role="user", content=[ir.Text(text="x")])],
                stop=list("abcdef")), "stop"),
    (ir.Request(model="m", messages=[ir.Message(role="tool", content=[
        ir.ToolResult(call_id="nope", content=[ir.Text(text="x")])])]), "messages"),
    (ir.Request(model="m", messages=[ir.Message(role="system", content=[
        ir.Text(text="only a system prompt")])]), "messages"),
])
def test_inexpressible_requests_are_rejected(request_: ir.Request, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.render_request(request_, model="m")
    assert caught.value.param == param


def test_image_urls_say_what_to_do() -> None:
    request = ir.Request(model="m", messages=[ir.Message(role="user", content=[
        ir.Image(url="https://example.com/cat.png")])])
    with pytest.raises(InvalidRequest, match="base64"):
        gemini.render_request(request, model="m")


def test_patch_request_only_clamps_the_output_cap() -> None:
    body = _json("request_full.json")
    patched = gemini.patch_request(body, model="x", max_tokens=42, stream_usage=True)
    assert patched["generationConfig"]["maxOutputTokens"] == 42
    assert {k: v for k, v in patched.items() if k != "generationConfig"} == {
        k: v for k, v in body.items() if k != "generationConfig"}
    assert body["generationConfig"]["maxOutputTokens"] == 100  # the caller's is untouched
    snake = gemini.patch_request({"contents": [], "generation_config": {
        "max_output_tokens": 9, "temperature": 1}}, model="x", max_tokens=5, stream_usage=False)
    assert snake == {"contents": [], "generation_config": {"max_output_tokens": 5,
                                                           "temperature": 1}}
    bare = gemini.patch_request({"contents": []}, model="x", max_tokens=5, stream_usage=False)
    assert bare == {"contents": [], "generationConfig": {"maxOutputTokens": 5}}


def test_tool_config_modes() -> None:
    def choice(config: dict[str, Any]) -> tuple[ir.ToolChoice | None, list[str]]:
        request = gemini.parse_request({
            "contents": [{"parts": [{"text": "x"}]}], "toolConfig": config,
            "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}],
        }, model="m", stream=False)
        return request.tool_choice, [t.name for t in request.tools]

    assert choice({"functionCallingConfig": {"mode": "AUTO"}})[0] == ir.ToolChoice(mode="auto")
    assert choice({"functionCallingConfig": {"mode": "NONE"}})[0] == ir.ToolChoice(mode="none")
    assert choice({"function_calling_config": {"mode": "ANY"}}) == (
        ir.ToolChoice(mode="required"), ["a", "b", "c"])
    assert choice({"functionCallingConfig": {"mode": "ANY",
                                             "allowedFunctionNames": ["a", "c"]}}) == (
        ir.ToolChoice(mode="required"), ["a", "c"])


def test_count_tokens_accepts_both_forms() -> None:
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    plain = gemini.parse_count_tokens({"contents": contents}, model="m")
    wrapped = gemini.parse_count_tokens({"generateContentRequest": {
        "model": "models/m", "contents": contents,
        "systemInstruction": {"parts": [{"text": "sys"}]}}}, model="m")
    assert plain.messages == [ir.Message(role="user", content=[ir.Text(text="hi")])]
    assert wrapped.messages[0] == ir.Message(role="system", content=[ir.Text(text="sys")])
    assert gemini.render_count_tokens(12) == {"totalTokens": 12}


def test_models_render_in_gemini_shape() -> None:
    model = gemini.render_model("gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, 65536)
    assert model["name"] == "models/gemini-2.5-flash"
    assert model["supportedGenerationMethods"] == ["generateContent", "countTokens"]
    assert (model["inputTokenLimit"], model["outputTokenLimit"]) == (1048576, 65536)
    assert gemini.render_model_list([model]) == {"models": [model]}


# ================================================================ errors
@pytest.mark.parametrize(("error", "status", "name"), [
    (InvalidRequest("bad", param="contents"), 400, "INVALID_ARGUMENT"),
    (AuthenticationFailed("bad key"), 401, "UNAUTHENTICATED"),
    (InsufficientCredits("no money"), 402, "FAILED_PRECONDITION"),
    (ModelNotFound("x"), 404, "NOT_FOUND"),
    (RateLimited("slow down"), 429, "RESOURCE_EXHAUSTED"),
    (UpstreamError("boom"), 502, "INTERNAL"),
    (Overloaded("busy"), 503, "UNAVAILABLE"),
    (UpstreamTimeout("late"), 504, "DEADLINE_EXCEEDED"),
])
def test_render_error(error: Exception, status: int, name: str) -> None:
    body = gemini.render_error(error)  # type: ignore[arg-type]
    assert list(body) == ["error"]
    assert (body["error"]["code"], body["error"]["status"]) == (status, name)
    assert body["error"]["message"] == error.message  # type: ignore[attr-defined]


def test_render_error_details() -> None:
    body = gemini.render_error(InvalidRequest("bad", param="contents", code="x_y"))
    assert body["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "X_Y", "domain": "afk"},
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": "contents", "description": "bad"}]}]


def test_stream_error_has_error_first() -> None:
    [event] = gemini.render_stream_error(Overloaded("busy"))
    assert event.data.startswith('{"error":')
    assert encode(event.data, event.event).startswith(b"data: {")


@pytest.mark.parametrize(("status", "body", "kind"), [
    (400, _json("error_api_key_invalid.json"), CredentialsRefused),
    (403, {"error": {"code": 403, "message": "Method doesn't allow unregistered callers",
                     "status": "PERMISSION_DENIED"}}, CredentialsRefused),
    (400, {"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}},
     InvalidRequest),
    (400, {"error": {"code": 400, "message": "User location is not supported",
                     "status": "FAILED_PRECONDITION"}}, UpstreamError),
    (429, {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
     RateLimited),
    (503, {"error": {"code": 503, "message": "The model is overloaded.",
                     "status": "UNAVAILABLE"}}, Overloaded),
    (504, {"error": {"code": 504, "message": "late", "status": "DEADLINE_EXCEEDED"}},
     UpstreamTimeout),
    (500, {"error": {"code": 500, "message": "oops", "status": "INTERNAL"}}, UpstreamError),
    (404, {"error": {"code": 404, "message": "models/x is not found"}}, UpstreamError),
])
def test_error_from_body(status: int, body: dict[str, Any], kind: type) -> None:
    error = gemini.error_from_body(body, status=status)
    assert type(error) is kind
    assert error.message.endswith(body["error"]["message"]) or "refused" in error.message


@pytest.mark.parametrize("name", ["error_api_key_invalid.json"])
def test_a_refused_provider_key_is_the_gateways_fault(name: str) -> None:
    """Not a 400 or 401 for the caller: their key was fine, ours was not. Final (a
    403 no SDK retries: issue 12), and without the upstream's words."""
    for status, body in ((400, _json(name)), (403, {"error": {
            "code": 403, "message": "Method doesn't allow unregistered callers",
            "status": "PERMISSION_DENIED"}})):
        error = gemini.error_from_body(body, status=status)
        assert (type(error), error.status, error.retryable) == (CredentialsRefused, 403, False)
        assert "refused" in error.message and body["error"]["message"] not in error.message


def test_grounding_offsets_are_bytes_on_the_wire_and_characters_in_the_ir() -> None:
    """Gemini counts a support's segment in UTF-8 bytes of the answer; the other
    dialects count characters (OpenAI's url_citation indices)."""
    text = "Das Café öffnet um 8. Es ist gut."
    cited = "Es ist gut."
    start = len(text.encode()) - len(cited.encode())
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP", "index": 0, "groundingMetadata": {
        "webSearchQueries": ["café öffnungszeiten"],
        "groundingChunks": [{"web": {"uri": "https://example.com/cafe", "title": "Café"}}],
        "groundingSupports": [{"segment": {"startIndex": start,
                                           "endIndex": len(text.encode()), "text": cited},
                               "groundingChunkIndices": [0]}]}}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 9}}
    response = gemini.parse_response(body)
    search, answer = response.content
    assert isinstance(search, ir.WebSearchCall) and search.query == "café öffnungszeiten"
    assert response.usage.web_searches == 1
    [citation] = answer.citations
    assert answer.text[citation.start:citation.end] == cited
    rendered = gemini.render_response(response)["candidates"][0]["groundingMetadata"]
    segment = rendered["groundingSupports"][0]["segment"]
    assert (segment["startIndex"], segment["endIndex"]) == (start, len(text.encode()))


@pytest.mark.parametrize("text", [" word", 'say "text":"" \\ ünï 🙂', "a\nb"])
def test_text_events_are_written_as_the_generic_event_writes_them(text: str) -> None:
    """A text event's fast path (the JSON around the text written once) writes exactly
    what the dict would have made; with usage known, the generic path still runs."""
    encoder = gemini.StreamEncoder(model='gemini "x"', include_usage=False)
    encoder.feed(ir.StreamStart(id='resp-"text":""', model="up", created=1))
    encoder.feed(ir.TextDelta(index=0, text=text))
    [event] = encoder.feed(ir.TextDelta(index=0, text="next"))  # sends the one held back
    generic = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                               "index": 0}],
               "modelVersion": 'gemini "x"', "responseId": 'resp-"text":""'}
    assert event.data == json.dumps(generic, separators=(",", ":"), ensure_ascii=False)
    encoder.feed(ir.UsageUpdate(usage=ir.Usage(input_tokens=3, output_tokens=2)))
    [with_usage] = encoder.feed(ir.TextDelta(index=0, text="more"))
    assert json.loads(with_usage.data)["usageMetadata"]["promptTokenCount"] == 3

