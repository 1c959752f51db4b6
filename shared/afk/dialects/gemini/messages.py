"""The conversation: Gemini `systemInstruction` + `contents` <-> IR messages.

Gemini calls usually carry no id, and Gemini pairs function responses with
calls by position; the IR pairs them by id. Both directions live here.
"""

from __future__ import annotations

import json
import re
from dataclasses import field
from typing import Any

from afk import ir
from afk.dialects.gemini.parts import (
    Skipped,
    parse_part,
    render_image,
)
from afk.dialects.gemini.wire import PROVIDER
from afk.dialects.jsonwire import arguments_object, dumps
from afk.errors import InvalidRequest
from afk.records import dataclass

_MISSING_RESULT = {"error": "No result was provided for this call."}


# ================================================================ wire -> IR
class _CallIds:
    """Ids for a history's function calls, and each function response's call.

    The synthesized id depends only on the call's position in the history, so it
    is the same every time the caller resends it, and the responses pair with
    calls by id or else by name in order.
    """

    def __init__(self) -> None:
        self._count = 0
        self._open: list[ir.ToolCall] = []

    def new(self, name: str, given: Any) -> str:
        self._count += 1
        if isinstance(given, str) and given:
            return given
        return f"call_{re.sub(r'[^A-Za-z0-9_-]', '_', name)}_{self._count - 1}"

    def opened(self, call: ir.ToolCall) -> None:
        self._open.append(call)

    def answer(self, name: str, given: Any) -> str:
        for i, call in enumerate(self._open):
            if (call.id == given) if given else (call.name == name):
                return self._open.pop(i).id
        # A response to a call we never saw: still a unique, stable id.
        return given if isinstance(given, str) and given else self.new(name, None)


def parse_system(instruction: Any) -> list[ir.Message]:
    if instruction is None:
        return []
    if isinstance(instruction, str):  # proto JSON is never a string, but SDKs' shorthand is
        return [ir.Message(role="system", content=[ir.Text(text=instruction)])]
    if not isinstance(instruction, dict):
        raise InvalidRequest("systemInstruction must be an object", param="systemInstruction")
    parts = instruction.get("parts") or []
    if not isinstance(parts, list) or not all(
            isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
        raise InvalidRequest("systemInstruction supports text parts only",
                             param="systemInstruction")
    texts = [ir.Text(text=p["text"]) for p in parts if p["text"]]
    return [ir.Message(role="system", content=list(texts))] if texts else []


def parse_contents(contents: Any, skipped: Skipped) -> list[ir.Message]:
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("contents must be a non-empty array", param="contents")
    ids = _CallIds()
    messages: list[ir.Message] = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = content.get("role") or "user"
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidRequest(f"{where}.parts must be a non-empty array",
                                 param=f"{where}.parts")
        before = len(skipped)
        if role == "model":
            blocks = _parse_model_parts(parts, where, ids, skipped)
            if blocks or len(skipped) == before:  # a turn of only skipped parts says nothing
                messages.append(ir.Message(role="assistant", content=blocks))
        elif role == "user":
            results, blocks = _parse_user_parts(parts, where, ids, skipped)
            if results:  # tool results go first, as in every other dialect
                messages.append(ir.Message(role="tool", content=list(results)))
            if blocks:
                messages.append(ir.Message(role="user", content=blocks))
        else:
            raise InvalidRequest(f"{where}.role must be 'user' or 'model', not {role!r}",
                                 param=f"{where}.role")
    return messages


def _parse_model_parts(parts: list[Any], where: str, ids: _CallIds,
                       skipped: Skipped) -> list[ir.Block]:
    blocks: list[ir.Block] = []
    for j, part in enumerate(parts):
        blocks += parse_part(part, f"{where}.parts[{j}]",
                             lambda call: ids.new(call["name"], call.get("id")), skipped)
    for block in blocks:
        if isinstance(block, ir.ToolCall):
            ids.opened(block)
    return blocks


def _parse_user_parts(parts: list[Any], where: str, ids: _CallIds,
                      skipped: Skipped) -> tuple[list[ir.ToolResult], list[ir.Block]]:
    results: list[ir.ToolResult] = []
    blocks: list[ir.Block] = []
    for j, part in enumerate(parts):
        here = f"{where}.parts[{j}]"
        if isinstance(part, dict) and "functionResponse" in part:
            results.append(_parse_function_response(part["functionResponse"], here, ids,
                                                    skipped))
        elif isinstance(part, dict) and "functionCall" in part:
            raise InvalidRequest(f"{here}: functionCall parts belong in 'model' contents",
                                 param=here)
        else:
            blocks += parse_part(part, here, lambda call: "", skipped)
    return results, blocks


def _parse_function_response(response: Any, where: str, ids: _CallIds,
                             skipped: Skipped) -> ir.ToolResult:
    if not isinstance(response, dict) or not isinstance(response.get("name"), str):
        raise InvalidRequest(f"{where}.functionResponse needs a name", param=where)
    name = response["name"]
    content: list[ir.Text | ir.Image] = [ir.Text(text=dumps(response.get("response") or {}))]
    for k, part in enumerate(response.get("parts") or []):
        content += [b for b in parse_part(part, f"{where}.functionResponse.parts[{k}]",
                                          lambda call: "", skipped)
                    if isinstance(b, ir.Image)]
    return ir.ToolResult(call_id=ids.answer(name, response.get("id")), name=name,
                         content=content)


# ================================================================ IR -> wire
@dataclass(slots=True)
class _Turn:
    """One Gemini content being assembled; tool results wait to be ordered."""

    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[ir.ToolCall] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # call id -> part


def render_system(messages: list[ir.Message]) -> list[dict[str, Any]]:
    return [{"text": b.text} for m in messages if m.role == "system"
            for b in m.content if isinstance(b, ir.Text) and b.text]


def render_contents(messages: list[ir.Message]) -> list[dict[str, Any]]:
    names = {b.id: b.name for m in messages for b in m.content if isinstance(b, ir.ToolCall)}
    turns: list[_Turn] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        if not turns or turns[-1].role != role:  # Gemini wants strictly alternating turns
            turns.append(_Turn(role))
        _add_blocks(turns[-1], message.content, names)
    contents: list[dict[str, Any]] = []
    calls: list[ir.ToolCall] = []
    for turn in turns:
        parts = turn.parts
        if turn.role == "user":
            parts = _answer(calls, turn) + parts
        calls = turn.calls
        if parts:
            contents.append({"role": turn.role, "parts": parts})
    if not contents:
        raise InvalidRequest("Gemini models need at least one user or assistant message.",
                             param="messages")
    return contents


def _answer(calls: list[ir.ToolCall], turn: _Turn) -> list[dict[str, Any]]:
    """One functionResponse per call of the previous turn, in its order (Gemini pairs
    them by position); a call left unanswered gets an error result."""
    parts = [turn.results.pop(call.id, {}) or {
        "functionResponse": {"name": call.name, "response": _MISSING_RESULT}} for call in calls]
    return parts + list(turn.results.values())


def _add_blocks(turn: _Turn, blocks: list[ir.Block], names: dict[str, str]) -> None:
    signature: str | None = None  # a Gemini thought signature for the next part
    for block in blocks:
        part: dict[str, Any]
        match block:
            case ir.Text(text=text) | ir.Refusal(text=text):
                if not text:
                    continue
                part = {"text": text}
            case ir.Image():
                part = render_image(block)
            case ir.ToolCall():
                turn.calls.append(block)
                part = {"functionCall": {"name": block.name,
                                         "args": _request_args(block)}}
                if block.provider == PROVIDER and block.signature:
                    part["thoughtSignature"] = block.signature
            case ir.ToolResult():
                turn.results[block.call_id] = _render_result(block, names)
                continue
            case ir.Thinking():
                # Only Gemini can read Gemini thoughts back; others' are dropped.
                if block.provider != PROVIDER or not block.signature:
                    continue
                if not block.text:
                    signature = block.signature
                    continue
                part = {"text": block.text, "thought": True,
                        "thoughtSignature": block.signature}
            case _:
                raise TypeError(f"unknown block {block!r}")
        if signature and "thoughtSignature" not in part:
            part["thoughtSignature"], signature = signature, None
        turn.parts.append(part)
    if signature:
        turn.parts.append({"text": "", "thoughtSignature": signature})


def _request_args(call: ir.ToolCall) -> dict[str, Any]:
    args = arguments_object(call.arguments)
    if args is None:
        raise InvalidRequest(f"The arguments of tool call {call.id!r} are not a JSON object; "
                             "Gemini needs one.", param="messages")
    return args


def _render_result(result: ir.ToolResult, names: dict[str, str]) -> dict[str, Any]:
    name = result.name or names.get(result.call_id)
    if not name:
        raise InvalidRequest(f"The tool result for {result.call_id!r} follows no tool call "
                             "with that id; Gemini needs the function's name.",
                             param="messages")
    text = "".join(b.text for b in result.content if isinstance(b, ir.Text))
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    # `response` must be an object; "result" and "error" are the SDK's own wrappers.
    if not isinstance(value, dict):
        value = {"error" if result.is_error else "result": value}
    response: dict[str, Any] = {"name": name, "response": value}
    images = [render_image(b) for b in result.content if isinstance(b, ir.Image)]
    if images:
        response["parts"] = images
    return {"functionResponse": response}
