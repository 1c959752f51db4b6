"""Tool-call arguments that are not a JSON object: one rule (afk.dialects.jsonwire),
each dialect showing it in its own way, never as an empty object a tool would run
with."""

from __future__ import annotations

import pytest

from afk import ir
from afk.dialects import anthropic, gemini
from afk.dialects.jsonwire import arguments_object
from afk.errors import InvalidRequest, UpstreamError

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
