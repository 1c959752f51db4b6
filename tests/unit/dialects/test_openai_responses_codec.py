"""afk.dialects.openai_responses: requests, responses, streams and errors, both ways and
across dialects, replayed on the transcripts of PROTOCOLS.md §2 (tests/fixtures/openai_responses)
and checked with the openai SDK's own stream accumulator."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import openai
import pytest
from openai._models import construct_type
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from starlette.applications import Starlette
from starlette.responses import Response as HTTPResponse
from starlette.routing import Route

from afk import ir
from afk.dialects import anthropic
from afk.dialects import openai_responses as codec
from afk.errors import InvalidRequest, RateLimited, UpstreamError
from afk.sse import ServerSentEvent, SSEDecoder, encode
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.servers import serve

FIXTURES = FIXTURES_ROOT / "openai_responses"
WEATHER = {"type": "function", "name": "get_weather", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _fixture(name: str) -> Any:
    raw = (FIXTURES / name).read_bytes()
    return json.loads(raw) if name.endswith(".json") else raw


def _sse(data: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.feed(data)
    assert not decoder.pending
    return events


def _decode(events: list[ServerSentEvent]) -> tuple[list[ir.StreamEvent], codec.StreamDecoder]:
    decoder = codec.StreamDecoder()
    out = [e for event in events for e in decoder.feed(event)]
    out += decoder.finish()
    assert decoder.done
    return out, decoder


def _encode(events: list[ir.StreamEvent], model: str = "gpt-4.1-mini", **kwargs: Any,
            ) -> list[ServerSentEvent]:
    encoder = codec.StreamEncoder(model=model, include_usage=False, **kwargs)
    return [out for event in events for out in encoder.feed(event)]


def _sdk(events: list[ServerSentEvent], tools: list[dict[str, Any]] | None = None,
         ) -> ResponseStreamState[Any]:
    """What openai's own stream accumulator makes of our events (raises on a broken rule)."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=tools or omit,
                                                          text_format=omit)
    for sequence, event in enumerate(events):
        data = json.loads(event.data)
        assert event.event == data["type"] and data["sequence_number"] == sequence
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=data))
    return state


def _pinned(events: list[ir.StreamEvent]) -> list[ir.StreamEvent]:
    return [dataclasses.replace(e, created=0) if isinstance(e, ir.StreamStart) else e
            for e in events]


# ================================================================ upstream streams -> IR
def test_text_transcript_decodes() -> None:
    events, decoder = _decode(_sse(_fixture("stream_text.sse")))
    assert events == [
        ir.StreamStart(id="resp_68a1", model="gpt-4.1-mini", created=1764000000),
        ir.TextDelta(index=0, text="Hello"), ir.TextDelta(index=0, text="!"),
        ir.UsageUpdate(usage=ir.Usage(input_tokens=12, output_tokens=3)),
        ir.StreamEnd(stop_reason="stop")]
    assert decoder.final_response is not None
    assert decoder.final_response["output"][0]["id"] == "msg_68a2"


def test_tool_call_transcript_decodes() -> None:
    events, _ = _decode(_sse(_fixture("stream_tool_call.sse")))
    response = ir.collect(events)
    assert response.content == [ir.ToolCall(id="call_Qx7", name="get_weather",
                                            arguments='{"city":"Paris"}')]
    assert response.stop_reason == "tool_calls" and response.usage.output_tokens == 17


def test_reasoning_transcript_decodes_with_signature() -> None:
    events, _ = _decode(_sse(_fixture("stream_reasoning.sse")))
    response = ir.collect(events)
    assert response.content == [
        ir.Thinking(text="Check the weather first.", signature="gAAAAB-rs-opaque-1",
                    provider="openai"),
        ir.Text(text="Paris is sunny.")]
    assert response.usage == ir.Usage(input_tokens=30, output_tokens=20, cached_input_tokens=10,
                                      reasoning_tokens=9)


def test_failed_transcript_raises_with_the_message() -> None:
    decoder = codec.StreamDecoder()
    events = _sse(_fixture("stream_failed.sse"))
    for event in events[:-1]:
        decoder.feed(event)
    with pytest.raises(UpstreamError, match="had an error") as caught:
        decoder.feed(events[-1])
    assert caught.value.code == "server_error"
    assert decoder.final_response is not None and decoder.final_response["status"] == "failed"


@pytest.mark.parametrize(("data", "cls"), [
    ({"type": "error", "sequence_number": 3, "code": "rate_limit_exceeded",
      "message": "Slow down", "param": None}, RateLimited),
    ({"type": "error", "sequence_number": 3, "error": {
        "type": "server_error", "code": "server_error", "message": "Boom", "param": None}},
     UpstreamError),
])
def test_both_error_event_shapes_raise(data: dict[str, Any], cls: type[Exception]) -> None:
    decoder = codec.StreamDecoder()
    decoder.feed(_sse(_fixture("stream_text.sse"))[0])
    with pytest.raises(cls):
        decoder.feed(ServerSentEvent(data=json.dumps(data), event="error"))


def test_eof_before_terminal_event_raises() -> None:
    decoder = codec.StreamDecoder()
    for event in _sse(_fixture("stream_text.sse"))[:-1]:
        decoder.feed(event)
    with pytest.raises(UpstreamError, match="ended before"):
        decoder.finish()


def test_events_before_created_raise() -> None:
    with pytest.raises(UpstreamError, match="before response.created"):
        codec.StreamDecoder().feed(_sse(_fixture("stream_text.sse"))[2])


def test_decoder_fail_continues_the_relayed_stream() -> None:
    """A passthrough that breaks mid-stream ends with a response.failed the SDK accepts."""
    events = _sse(_fixture("stream_text.sse"))[:5]
    decoder = codec.StreamDecoder()
    for event in events:
        decoder.feed(event)
    failed = decoder.fail(UpstreamError("upstream went away"))
    state = _sdk(events + failed)
    data = json.loads(failed[0].data)
    assert data["response"]["id"] == "resp_68a1" and data["sequence_number"] == 5
    assert data["response"]["error"]["message"] == "upstream went away"
    assert state._completed_response is None
    assert decoder.passthrough(events[-1], include_usage=False) is events[-1]


# ================================================================ IR -> caller streams
@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_call.sse",
                                  "stream_reasoning.sse"])
def test_stream_round_trip_through_the_sdk(name: str) -> None:
    """transcript -> IR -> our encoder -> the SDK accumulator -> same answer; our events
    decode back to the same IR."""
    events, _ = _decode(_sse(_fixture(name)))
    assert isinstance(events[0], ir.StreamStart)
    ours = _encode(events, model=events[0].model)
    final = _sdk(ours, tools=[WEATHER])._completed_response
    assert final is not None
    expected = construct_type(type_=Response,
                              value=json.loads(_sse(_fixture(name))[-1].data)["response"])
    assert isinstance(expected, Response) and final.output_text == expected.output_text
    assert [o.type for o in final.output] == [o.type for o in expected.output]
    assert final.usage is not None and expected.usage is not None
    assert final.usage.total_tokens == expected.usage.total_tokens
    again, _ = _decode(_sse(b"".join(encode(e.data, e.event) for e in ours)))
    assert _pinned(again) == _pinned(events)


def test_stream_and_non_stream_agree() -> None:
    events, _ = _decode(_sse(_fixture("stream_reasoning.sse")))
    ours = _encode(events, echo={"id": "resp_gw1", "store": True})
    streamed = json.loads(ours[-1].data)["response"]
    rendered = codec.render_response(ir.collect(events), echo={"id": "resp_gw1", "store": True})
    assert streamed["output"] == rendered["output"] == codec.render_output_items(
        ir.collect(events), echo={"id": "resp_gw1"})
    assert streamed["id"] == rendered["id"] == "resp_gw1" and streamed["store"] is True
    assert [i["id"][:3] for i in rendered["output"]] == ["rs_", "msg"]


def _anthropic_like() -> list[ir.StreamEvent]:
    return [ir.StreamStart(id="msg_01", model="claude", created=1),
            ir.ThinkingDelta(index=0, text="Let me think."),
            ir.ThinkingDelta(index=0, signature="sig-A", provider="anthropic"),
            ir.TextDelta(index=1, text="Checking."),
            ir.ToolCallStart(index=2, id="toolu_1", name="get_weather"),
            ir.ToolCallDelta(index=2, arguments='{"city":'),
            ir.ToolCallDelta(index=2, arguments='"Paris"}'),
            ir.UsageUpdate(usage=ir.Usage(input_tokens=50, output_tokens=30,
                                          cached_input_tokens=20, cache_write_tokens=5)),
            ir.StreamEnd(stop_reason="tool_calls")]


def test_cross_dialect_stream_satisfies_the_sdk() -> None:
    ours = _encode(_anthropic_like())
    final = _sdk(ours, tools=[WEATHER])._completed_response
    assert final is not None and final.status == "completed"
    reasoning, message, call = final.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Let me think."
    assert reasoning.encrypted_content == "afk1.anthropic.sig-A"
    assert message.type == "message" and final.output_text == "Checking."
    assert call.type == "function_call" and call.arguments == '{"city":"Paris"}'
    assert final.usage is not None
    assert final.usage.input_tokens_details.cache_write_tokens == 5
    # Thought text never leaks into visible output_text.
    assert "think" not in final.output_text


def test_gemini_call_signature_rides_a_reasoning_item() -> None:
    events = [ir.StreamStart(id="r1", model="gemini", created=1),
              ir.ToolCallStart(index=0, id="call_g", name="get_weather", signature="tsig",
                               provider="gemini"),
              ir.ToolCallDelta(index=0, arguments='{"city":"Paris"}'),
              ir.StreamEnd(stop_reason="tool_calls")]
    final = _sdk(_encode(events))._completed_response
    assert final is not None
    carrier, call = final.output
    assert carrier.type == "reasoning" and carrier.summary == []
    assert carrier.encrypted_content == "afk1.gemini.tsig"
    back = codec.parse_items([o.to_dict() for o in final.output])
    assert back[0].content == [ir.ToolCall(id="call_g", name="get_weather",
                                           arguments='{"city":"Paris"}', signature="tsig",
                                           provider="gemini")]


def test_length_ends_incomplete_and_errors_end_failed() -> None:
    events = [ir.StreamStart(id="r1", model="m", created=1), ir.TextDelta(index=0, text="Hi"),
              ir.StreamEnd(stop_reason="length")]
    ours = _encode(events)
    last = json.loads(ours[-1].data)
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    state = _sdk(ours)
    assert state._completed_response is None  # get_final_response() would raise (rule 7)


def test_encoder_fail_before_and_after_start() -> None:
    encoder = codec.StreamEncoder(model="m", include_usage=False)
    early = encoder.fail(RateLimited("Slow down"))
    assert [e.event for e in early] == ["response.created", "response.in_progress",
                                        "response.failed"]
    _sdk(early)
    encoder = codec.StreamEncoder(model="m", include_usage=False, echo={"id": "resp_x"})
    out = [e for ev in _anthropic_like()[:4] for e in encoder.feed(ev)]
    out += encoder.fail(UpstreamError("gone"))
    _sdk(out)
    failed = json.loads(out[-1].data)["response"]
    assert failed["id"] == "resp_x" and failed["error"] == {"code": "server_error",
                                                            "message": "gone"}
    stateless = codec.render_stream_error(UpstreamError("x"))
    assert [e.event for e in stateless][0] == "response.created"
    assert json.loads(stateless[-1].data)["type"] == "response.failed"


def test_encoder_rejects_illegal_order() -> None:
    encoder = codec.StreamEncoder(model="m", include_usage=False)
    with pytest.raises(ValueError):
        encoder.feed(ir.TextDelta(index=0, text="x"))
    encoder.feed(ir.StreamStart(id="r", model="m", created=0))
    with pytest.raises(ValueError):
        encoder.feed(ir.ToolCallDelta(index=3, arguments="{}"))


def test_encoded_stream_served_to_responses_stream() -> None:
    """The real `client.responses.stream()` over HTTP accepts our bytes."""
    body = b"".join(encode(e.data, e.event) for e in _encode(_anthropic_like()))

    async def respond(request: Any) -> HTTPResponse:
        return HTTPResponse(body, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/responses", respond, methods=["POST"])])
    with serve(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        with client.responses.stream(model="m", input="hi", tools=[WEATHER]) as stream:
            final = stream.get_final_response()
    assert final.output_text == "Checking."
    assert final.output[2].type == "function_call"


def test_custom_and_namespaced_tools_render_back_in_kind() -> None:
    tools = [{"type": "custom", "name": "apply_patch_text", "description": "A patch"},
             {"type": "namespace", "name": "crm", "description": "CRM",
              "tools": [{"type": "function", "name": "lookup", "parameters": None}]}]
    request = codec.parse_request({"model": "m", "input": "x", "tools": tools})
    assert [t.name for t in request.tools] == ["apply_patch_text", "crm__lookup"]
    assert request.tools[0].parameters == {
        "type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"],
        "additionalProperties": False}
    events = [ir.StreamStart(id="r1", model="m", created=1),
              ir.ToolCallStart(index=0, id="c1", name="apply_patch_text"),
              ir.ToolCallDelta(index=0, arguments='{"input":"*** Begin'),
              ir.ToolCallDelta(index=0, arguments=' Patch"}'),
              ir.ToolCallStart(index=1, id="c2", name="crm__lookup"),
              ir.ToolCallDelta(index=1, arguments="{}"),
              ir.StreamEnd(stop_reason="tool_calls")]
    echo = codec.echo_fields({"model": "m", "tools": tools})
    final = _sdk(_encode(events, echo=echo))._completed_response
    assert final is not None
    custom, namespaced = final.output
    assert custom.type == "custom_tool_call" and custom.input == "*** Begin Patch"
    assert namespaced.type == "function_call"
    assert (namespaced.namespace, namespaced.name) == ("crm", "lookup")
    rendered = codec.render_response(ir.collect(events), echo=echo)
    assert [o["type"] for o in rendered["output"]] == ["custom_tool_call", "function_call"]
    # ... and the caller's next turn comes back to the same IR names.
    back = codec.parse_items([o.to_dict() for o in final.output])
    assert [b.name for b in back[0].content] == ["apply_patch_text", "crm__lookup"]
    assert back[0].content[0].arguments == '{"input":"*** Begin Patch"}'


def test_custom_tool_input_that_is_not_json_reaches_the_caller_as_is() -> None:
    """A foreign model's custom-tool call whose arguments are not the `{"input": ...}`
    object (broken JSON) reaches the caller's tool as that text, stream and not,
    instead of an empty input it would run with."""
    tools = [{"type": "custom", "name": "apply_patch_text", "description": "A patch"}]
    events = [ir.StreamStart(id="r1", model="m", created=1),
              ir.ToolCallStart(index=0, id="c1", name="apply_patch_text"),
              ir.ToolCallDelta(index=0, arguments='*** Begin Patch {"input": '),
              ir.StreamEnd(stop_reason="tool_calls")]
    echo = codec.echo_fields({"model": "m", "tools": tools})
    final = _sdk(_encode(events, echo=echo))._completed_response
    assert final is not None
    assert final.output[0].type == "custom_tool_call"
    assert final.output[0].input == '*** Begin Patch {"input": '
    rendered = codec.render_response(ir.collect(events), echo=echo)
    assert rendered["output"][0]["input"] == '*** Begin Patch {"input": '


# ================================================================ non-stream responses
def test_parse_response_text_with_reasoning() -> None:
    response = codec.parse_response(_fixture("response_text.json"))
    assert response.content == [ir.Text(text="Hello!")]  # an empty reasoning item holds nothing
    assert response.stop_reason == "stop"
    assert response.usage == ir.Usage(input_tokens=20, output_tokens=74, reasoning_tokens=64)


def test_parse_response_tool_call() -> None:
    response = codec.parse_response(_fixture("response_tool_call.json"))
    assert response.content == [
        ir.Thinking(text="Need the weather.\n\nCall the tool.", signature="gAAAAB-rs-opaque-2",
                    provider="openai"),
        ir.ToolCall(id="call_Qx7", name="get_weather", arguments='{"city":"Paris"}')]
    assert response.stop_reason == "tool_calls"
    assert response.usage.cached_input_tokens == 64


@pytest.mark.parametrize(("details", "reason"), [
    ({"reason": "max_output_tokens"}, "length"), ({"reason": "content_filter"}, "content_filter")])
def test_incomplete_reasons(details: dict[str, str], reason: str) -> None:
    body = {**_fixture("response_text.json"), "status": "incomplete",
            "incomplete_details": details}
    assert codec.parse_response(body).stop_reason == reason


def test_failed_response_raises() -> None:
    body = {**_fixture("response_text.json"), "status": "failed",
            "error": {"code": "server_error", "message": "Model crashed"}}
    with pytest.raises(UpstreamError, match="Model crashed"):
        codec.parse_response(body)


def test_render_response_is_a_valid_sdk_response() -> None:
    response = ir.collect(_anthropic_like())
    echo = codec.echo_fields({"model": "m", "input": "x", "instructions": "Be brief.",
                              "tools": [WEATHER], "tool_choice": "auto", "store": False,
                              "max_output_tokens": 100, "temperature": 0.5})
    body = codec.render_response(response, echo=echo)
    parsed = Response.model_validate(body)  # strict validation, not construct()
    assert parsed.instructions == "Be brief." and parsed.store is False
    assert parsed.usage is not None and parsed.usage.total_tokens == 80
    assert parsed.status == "completed"
    assert [o.type for o in parsed.output] == ["reasoning", "message", "function_call"]


def test_response_round_trip() -> None:
    body = _fixture("response_tool_call.json")
    response = codec.parse_response(body)
    again = codec.render_response(response)
    assert codec.parse_response(again) == response
    assert again["output"][0]["encrypted_content"] == "gAAAAB-rs-opaque-2"


# ================================================================ requests
def test_parse_full_request() -> None:
    request = codec.parse_request(_fixture("request_full.json"))
    system, developer, user, assistant, tool, reply, thanks = request.messages
    assert system == ir.Message(role="system", content=[ir.Text(text="Be brief.")])
    assert developer.role == "system"
    assert user.content[1] == ir.Image(data="iVBORw0KGgo=", media_type="image/png", detail="low")
    assert user.content[2] == ir.Image(data="JVBERi0x", media_type="application/pdf")
    assert assistant.content == [
        ir.Thinking(text="Need the weather.", signature="gAAAAB-rs-opaque-2", provider="openai"),
        ir.ToolCall(id="call_Qx7", name="get_weather", arguments='{"city":"Paris"}')]
    assert tool == ir.Message(role="tool", content=[
        ir.ToolResult(call_id="call_Qx7", content=[ir.Text(text="18C, sunny")])])
    assert reply == ir.Message(role="assistant", content=[ir.Text(text="18C and sunny.")])
    assert thanks.content == [ir.Text(text="Thanks")]
    assert request.tool_choice == ir.ToolChoice(mode="tool", name="get_weather")
    assert request.response_format == ir.ResponseFormat(type="json_schema", name="weather",
                                                         schema={"type": "object"}, strict=True)
    assert (request.max_output_tokens, request.reasoning_effort, request.user) == (
        500, "low", "user-42")
    assert (request.temperature, request.top_p, request.parallel_tool_calls) == (0.2, 0.9, False)
    assert request.stream and request.metadata == {"k": "v"}
    codec.check_translatable(_fixture("request_full.json"))  # nothing OpenAI-only


def test_items_round_trip() -> None:
    messages = codec.parse_request(_fixture("request_full.json")).messages
    items = codec.render_items(messages)
    assert all(item["id"] for item in items)
    assert codec.parse_items(items) == [
        ir.Message(role=m.role, content=m.content) for m in messages]
    assert codec.render_items(messages) == items  # deterministic ids


def test_anthropic_ir_round_trips_through_items() -> None:
    """Anthropic thinking (and redacted thinking) + a tool call -> Responses items ->
    back: the same IR, signature issuer included."""
    body = {"model": "claude", "max_tokens": 100, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-A"},
            {"type": "redacted_thinking", "data": "red-B"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}]}
    messages = anthropic.parse_request(body).messages
    items = codec.render_items(messages)
    assert [i["type"] for i in items] == ["message", "reasoning", "reasoning", "function_call",
                                          "function_call_output"]
    assert items[1]["encrypted_content"] == "afk1.anthropic.sig-A"
    back = codec.parse_items(items)
    assert back == messages
    # Sent to OpenAI, foreign reasoning is dropped; OpenAI's own is kept.
    upstream = codec.render_request(ir.Request(model="x", messages=back), model="gpt-5")
    assert [i["type"] for i in upstream["input"]] == ["message", "function_call",
                                                      "function_call_output"]
    assert "id" not in upstream["input"][0]


def test_render_request_for_openai() -> None:
    request = codec.parse_request(_fixture("request_full.json"))
    body = codec.render_request(request, model="gpt-5")
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert "instructions" not in body
    assert body["input"][0] == {"type": "message", "role": "developer", "status": "completed",
                                "content": [{"type": "input_text", "text": "Be brief."}]}
    reasoning = next(i for i in body["input"] if i["type"] == "reasoning")
    assert reasoning["encrypted_content"] == "gAAAAB-rs-opaque-2" and reasoning["id"]
    assert body["tools"] == [{"type": "function", "name": "get_weather",
                              "description": "Weather by city",
                              "parameters": WEATHER["parameters"] | {"required": ["city"]},
                              "strict": False}]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["text"]["format"]["type"] == "json_schema"
    assert body["reasoning"] == {"effort": "low"} and body["max_output_tokens"] == 500
    assert body["parallel_tool_calls"] is False and body["stream"] is True
    assert codec.parse_request(body).messages == request.messages


def test_render_request_answers_orphan_calls() -> None:
    messages = [ir.Message(role="user", content=[ir.Text(text="hi")]),
                ir.Message(role="assistant", content=[
                    ir.ToolCall(id="c1", name="f", arguments="{}")]),
                ir.Message(role="user", content=[ir.Text(text="never mind")])]
    items = codec.render_request(ir.Request(model="m", messages=messages), model="m")["input"]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output",
                                          "message"]


def test_string_input_and_ignored_transport_fields() -> None:
    request = codec.parse_request({"model": "m", "input": "Hi", "store": True,
                                   "previous_response_id": "resp_1", "background": False,
                                   "conversation": "conv_1", "include": ["x"]})
    assert request.messages == [ir.Message(role="user", content=[ir.Text(text="Hi")])]


def test_patch_request_changes_only_model_and_cap() -> None:
    body = _fixture("request_full.json")
    patched = codec.patch_request(body, model="gpt-5", max_tokens=200, stream_usage=True)
    assert patched == {**body, "model": "gpt-5", "max_output_tokens": 200}


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "max_output_tokens": "9"}, "max_output_tokens"),
    ({"model": "m", "input": 3}, "input"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]},
     "input[0].output"),
    ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tool_choice": 7}, "tool_choice"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format"),
    ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
])
def test_invalid_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        codec.parse_request(body)
    assert caught.value.param == param


def test_hosted_tools_and_items_parse_but_are_not_translatable() -> None:
    body = {"model": "m", "tools": [
        WEATHER, {"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["v"]},
        {"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "local_shell"},
        {"type": "mcp", "server_label": "x"},
        {"type": "custom", "name": "sql", "format": {"type": "grammar", "syntax": "lark",
                                                     "definition": "start: x"}}],
        "input": [{"role": "user", "content": "x"},
                  {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                  {"type": "item_reference", "id": "msg_0"},
                  {"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}
    request = codec.parse_request(body)  # a same-provider passthrough still works
    assert [t.name for t in request.tools] == ["get_weather"]
    assert request.web_search == ir.WebSearch()  # web search maps onto every provider...
    with pytest.raises(InvalidRequest) as caught:
        codec.check_translatable(body)
    message = caught.value.message
    for name in ("'file_search'", "'code_interpreter'", "'local_shell'",
                 "'mcp'", "grammar", "'item_reference'", "file_id"):
        assert name in message
    # ...and a past search in the history stays OpenAI's own record.
    assert "'web_search'" not in message and "'web_search_call'" not in message
    assert caught.value.param == "tools[2]"


def test_allowed_tools_keeps_only_the_allowed() -> None:
    other = {**WEATHER, "name": "get_time"}
    request = codec.parse_request({"model": "m", "input": "x", "tools": [WEATHER, other],
                                   "tool_choice": {"type": "allowed_tools", "mode": "required",
                                                   "tools": [{"type": "function",
                                                              "name": "get_time"}]}})
    assert [t.name for t in request.tools] == ["get_time"]
    assert request.tool_choice == ir.ToolChoice(mode="tool", name="get_time")


# ================================================================ input items list, errors
def test_input_items_list_pages() -> None:
    items = [{"id": f"msg_{i}", "type": "message"} for i in range(5)]
    page = codec.render_input_items_list(items, limit=2, order="desc", after=None)
    assert [i["id"] for i in page["data"]] == ["msg_4", "msg_3"]
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("msg_4", "msg_3", True)
    page = codec.render_input_items_list(items, limit=10, order="asc", after="msg_2")
    assert [i["id"] for i in page["data"]] == ["msg_3", "msg_4"] and not page["has_more"]
    with pytest.raises(InvalidRequest):
        codec.render_input_items_list(items, limit=0, order="asc", after=None)


def test_errors_are_openai_shaped() -> None:
    assert codec.render_error(RateLimited("Slow down"))["error"]["code"] == \
        "rate_limit_exceeded"
    error = codec.error_from_body({"error": {"message": "bad", "code": "x", "param": "input"}},
                                  status=400)
    assert isinstance(error, InvalidRequest) and error.param == "input"


@pytest.mark.parametrize("text", [" word", 'say "hi" \\ ünï 🙂', "a\nb"])
def test_text_deltas_are_written_as_the_generic_event_writes_them(text: str) -> None:
    """More text for the open part (the fast path) is the event `_emit` would make."""
    encoder = codec.StreamEncoder(model="m", include_usage=False)
    opened = encoder.feed(ir.StreamStart(id="resp_1", model="m", created=1))
    opened += encoder.feed(ir.TextDelta(index=0, text="first"))
    item_id = next(json.loads(e.data)["item"]["id"] for e in opened
                   if e.event == "response.output_item.added")
    [event] = encoder.feed(ir.TextDelta(index=0, text=text))
    generic = {"type": "response.output_text.delta",
               "sequence_number": json.loads(opened[-1].data)["sequence_number"] + 1,
               "item_id": item_id, "output_index": 0, "content_index": 0, "delta": text,
               "logprobs": []}
    assert event.event == "response.output_text.delta"
    assert event.data == json.dumps(generic, separators=(",", ":"), ensure_ascii=False)
    [done] = [e for e in encoder.feed(ir.StreamEnd(stop_reason="stop"))
              if e.event == "response.output_text.done"]
    assert json.loads(done.data)["text"] == "first" + text
