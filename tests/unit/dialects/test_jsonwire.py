"""afk.dialects.jsonwire: compact JSON as the standard library writes it; tool-call
arguments that are not a JSON object: one rule,
each dialect showing it in its own way, never as an empty object a tool would run
with."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afk import ir
from afk.dialects import anthropic, gemini
from afk.dialects.jsonwire import append_text, arguments_object, dumps, load_event
from afk.errors import InvalidRequest, UpstreamError
from afk.sse import ServerSentEvent

BROKEN = '{"city": "Par'


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}), ("  ", {}), ('{"a": 1}', {"a": 1}), (BROKEN, None), ("[1]", None), ("3", None)])
def test_arguments_object(text: str, expected: dict[str, int] | None) -> None:
    assert arguments_object(text) == expected


def _answer(arguments: str) -> ir.Response:
    return ir.Response(id="r", model="m", created=1, stop_reason="tool_calls",
                       usage=ir.Usage(), content=[ir.ToolCall(id="c1", name="weather", arguments=arguments)])


def test_anthropic_keeps_broken_arguments_visible() -> None:
    block = anthropic.render_response(_answer(BROKEN))["content"][0]
    assert block["type"] == "tool_use" and block["input"] == {"_raw": BROKEN}


def test_gemini_refuses_broken_arguments() -> None:
    with pytest.raises(UpstreamError, match="invalid JSON arguments"):
        gemini.render_response(_answer(BROKEN))
    history = ir.Request(model="m", messages=[
        ir.Message(role="user", content=[ir.Text(text="hi")]),
        ir.Message(role="assistant", content=[
            ir.ToolCall(id="c1", name="weather", arguments=BROKEN)])])
    with pytest.raises(InvalidRequest, match="not a JSON object"):
        gemini.render_request(history, model="gemini-x")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(JSON_VALUES)
def test_dumps_writes_what_json_dumps_writes(value: object) -> None:
    """The wire's compact JSON (one encoder built once) is the standard library's, byte
    for byte: non-ASCII kept, no spaces, keys in order."""
    assert dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_dumps_refuses_what_json_cannot_write() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        dumps({"a": {1, 2}})


@pytest.mark.parametrize("text", ['{"a": 1}', ' {"a": 1} ', '{"a": "ünï \\"q\\""}'])
def test_load_event_reads_what_json_loads_reads(text: str) -> None:
    assert load_event(ServerSentEvent(data=text)) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{not json", '{"a": 1} trailing', "[1]", "NaN x", "3"])
def test_load_event_refuses_anything_but_one_object(text: str) -> None:
    with pytest.raises(UpstreamError, match="malformed stream event"):
        load_event(ServerSentEvent(data=text))


def test_append_text_grows_the_item_in_its_place() -> None:
    part = {"type": "output_text", "text": "", "annotations": []}
    for piece in ("Hel", "lo", " ünï"):
        append_text(part, "text", piece)
    assert part == {"type": "output_text", "text": "Hello ünï", "annotations": []}
    assert list(part) == ["type", "text", "annotations"]  # the JSON's key order kept
