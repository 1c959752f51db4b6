"""Gemini generateContent (`POST /{v}/models/{m}:generateContent` and
`:streamGenerateContent`), both directions.

The model and the stream flag live in the URL, so `parse_request` takes them as
arguments. Callers mix camelCase and proto snake_case keys at any depth
(google-genai does); bodies are normalised once on entry, and everything this
module emits is camelCase.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from afk import ir
from afk.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from afk.sse import ServerSentEvent

DIALECT = "gemini"
PROVIDER = "gemini"

MAX_STOP_SEQUENCES = 5
_FILTERED = frozenset({"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
                       "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})
_STOP_TO_WIRE: dict[str, str] = {
    "stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "stop_sequence": "STOP",
    "content_filter": "SAFETY", "refusal": "SAFETY", "pause": "STOP", "error": "OTHER",
}
_MODES: dict[str, str] = {"AUTO": "auto", "NONE": "none", "ANY": "required",
                          "VALIDATED": "auto"}  # VALIDATED: call or answer, schema-checked
_MODES_TO_WIRE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
# reasoning_effort -> thinkingBudget. Budgets, unlike thinkingLevel, work on every
# thinking model (2.5 and 3); 24576 is the largest budget 2.5 Flash accepts, so
# the top efforts stay valid everywhere. `none` turns thinking off, which 2.5 Pro
# refuses with a 400 that names it.
_EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 2048, "medium": 8192, "high": 24576,
                   "xhigh": 24576, "max": 24576}
_MISSING_RESULT = {"error": "No result was provided for this call."}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ================================================================ key spelling
# Values under these keys are caller data (function arguments and results,
# JSON Schemas, labels): their keys are names and must never be respelled.
_OPAQUE_KEYS = frozenset({"args", "response", "parametersJsonSchema", "responseJsonSchema",
                          "labels", "default", "example"})
# Maps from names to schemas: keep the names, normalise the schemas.
_NAME_MAPS = frozenset({"properties"})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def normalize_keys(value: Any) -> Any:
    """A body with every proto field name in camelCase, caller data untouched."""
    if isinstance(value, list):
        return [normalize_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key)
        if name in _OPAQUE_KEYS:
            out[name] = item
        elif name in _NAME_MAPS and isinstance(item, dict):
            out[name] = {k: normalize_keys(v) for k, v in item.items()}
        else:
            out[name] = normalize_keys(item)
    return out


def _json_schema(schema: Any) -> Any:
    """A Gemini `Schema` (OpenAPI subset) as JSON Schema, for the other dialects."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("propertyOrdering", "nullable"):
            continue  # Gemini-only hints; nullable is folded into `type` below
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _json_schema(s) for name, s in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = _json_schema(value)
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# ================================================================ requests
class _CallIds:
    """Ids for a history's function calls, and each function response's call.

    Gemini calls usually carry no id; the synthesized one depends only on the
    call's position in the history, so it is the same every time the caller
    resends it, and the responses pair with calls by id or else by name in order.
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


def parse_request(body: Any, *, model: str, stream: bool) -> ir.Request:
    """Validate a caller's GenerateContentRequest and lift it into the IR."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    body = normalize_keys(body)
    config = _object(body.get("generationConfig"), "generationConfig")
    count = config.get("candidateCount")
    if count not in (None, 1):
        raise InvalidRequest("This gateway supports only candidateCount=1.",
                             param="generationConfig.candidateCount")
    thinking = _object(config.get("thinkingConfig"), "generationConfig.thinkingConfig")
    tools = _parse_tools(body.get("tools"))
    tool_choice, tools = _parse_tool_config(body.get("toolConfig"), tools)
    level = thinking.get("thinkingLevel")
    stop = config.get("stopSequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stopSequences must be an array of strings",
                             param="generationConfig.stopSequences")
    return ir.Request(
        model=model,
        messages=_parse_system(body.get("systemInstruction")) + _parse_contents(
            body.get("contents")),
        max_output_tokens=_positive_int(config, "maxOutputTokens"),
        stream=stream,
        stream_usage=stream,  # Gemini streams always carry usage
        tools=tools,
        tool_choice=tool_choice,
        response_format=_parse_response_format(config),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        top_k=config.get("topK"),
        stop=stop,
        seed=config.get("seed"),
        reasoning_effort=(level.lower() if isinstance(level, str)
                          and level != "THINKING_LEVEL_UNSPECIFIED" else None),
        thinking_budget=thinking.get("thinkingBudget"),
    )


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    return value


def _positive_int(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"generationConfig.{key} must be a positive integer",
                             param=f"generationConfig.{key}")
    return value


def patch_request(body: dict[str, Any], *, model: str, max_tokens: int,
                  stream_usage: bool) -> dict[str, Any]:
    """The caller's body for a Gemini upstream with only the output cap changed.

    The model lives in the URL (the provider puts it there) and Gemini streams
    always carry usage, so `model` and `stream_usage` change nothing here.
    """
    del model, stream_usage
    patched = dict(body)
    containers = [k for k in ("generationConfig", "generation_config") if k in body]
    for container in containers or ["generationConfig"]:
        config = dict(body.get(container) or {})
        caps = [k for k in ("maxOutputTokens", "max_output_tokens") if k in config]
        for cap in caps or ["maxOutputTokens"]:
            config[cap] = max_tokens
        patched[container] = config
    return patched


def _parse_system(instruction: Any) -> list[ir.Message]:
    if instruction is None:
        return []
    if isinstance(instruction, str):  # proto JSON is never a string, but SDKs' shorthand is
        return [ir.Message(role="system", content=[ir.Text(text=instruction)])]
    parts = _object(instruction, "systemInstruction").get("parts") or []
    if not isinstance(parts, list) or not all(
            isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
        raise InvalidRequest("systemInstruction supports text parts only",
                             param="systemInstruction")
    texts = [ir.Text(text=p["text"]) for p in parts if p["text"]]
    return [ir.Message(role="system", content=list(texts))] if texts else []


def _parse_contents(contents: Any) -> list[ir.Message]:
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
        if role == "model":
            blocks = _parse_model_parts(parts, where, ids)
            messages.append(ir.Message(role="assistant", content=blocks))
        elif role == "user":
            results, blocks = _parse_user_parts(parts, where, ids)
            if results:  # tool results go first, as in every other dialect
                messages.append(ir.Message(role="tool", content=list(results)))
            if blocks:
                messages.append(ir.Message(role="user", content=blocks))
        else:
            raise InvalidRequest(f"{where}.role must be 'user' or 'model', not {role!r}",
                                 param=f"{where}.role")
    return messages


def _parse_model_parts(parts: list[Any], where: str, ids: _CallIds) -> list[ir.Block]:
    blocks: list[ir.Block] = []
    for j, part in enumerate(parts):
        blocks += _parse_part(part, f"{where}.parts[{j}]",
                              lambda call: ids.new(call["name"], call.get("id")))
    for block in blocks:
        if isinstance(block, ir.ToolCall):
            ids.opened(block)
    return blocks


def _parse_user_parts(parts: list[Any], where: str,
                      ids: _CallIds) -> tuple[list[ir.ToolResult], list[ir.Block]]:
    results: list[ir.ToolResult] = []
    blocks: list[ir.Block] = []
    for j, part in enumerate(parts):
        here = f"{where}.parts[{j}]"
        if isinstance(part, dict) and "functionResponse" in part:
            results.append(_parse_function_response(part["functionResponse"], here, ids))
        elif isinstance(part, dict) and "functionCall" in part:
            raise InvalidRequest(f"{here}: functionCall parts belong in 'model' contents",
                                 param=here)
        else:
            blocks += _parse_part(part, here, lambda call: "")
    return results, blocks


def _parse_function_response(response: Any, where: str, ids: _CallIds) -> ir.ToolResult:
    if not isinstance(response, dict) or not isinstance(response.get("name"), str):
        raise InvalidRequest(f"{where}.functionResponse needs a name", param=where)
    name = response["name"]
    content: list[ir.Text | ir.Image] = [ir.Text(text=_dumps(response.get("response") or {}))]
    for k, part in enumerate(response.get("parts") or []):
        content += [b for b in _parse_part(part, f"{where}.functionResponse.parts[{k}]",
                                           lambda call: "") if isinstance(b, ir.Image)]
    return ir.ToolResult(call_id=ids.answer(name, response.get("id")), name=name,
                         content=content)


def _parse_part(part: Any, where: str,
                call_id: Callable[[dict[str, Any]], str]) -> list[ir.Block]:
    """One content part as IR blocks. A signature on a non-thought part becomes a
    signature-only Thinking block before it (the IR keeps signatures on thinking)."""
    if not isinstance(part, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    signature, issuer = _signature(part.get("thoughtSignature"))
    if "functionCall" in part:
        call = part["functionCall"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise InvalidRequest(f"{where}.functionCall needs a name", param=where)
        args = call.get("args") or {}
        if not isinstance(args, dict):
            raise InvalidRequest(f"{where}.functionCall.args must be an object", param=where)
        return [ir.ToolCall(id=call_id(call), name=call["name"], arguments=_dumps(args),
                            signature=signature, provider=issuer)]
    if part.get("thought") is True:
        return [ir.Thinking(text=str(part.get("text") or ""), signature=signature,
                            provider=issuer)]
    blocks: list[ir.Block] = []
    if signature:
        blocks.append(ir.Thinking(text="", signature=signature, provider=issuer))
    if isinstance(part.get("text"), str):
        return blocks + ([ir.Text(text=part["text"])] if part["text"] else [])
    if isinstance(part.get("inlineData"), dict):
        data = part["inlineData"]
        return blocks + [ir.Image(data=data.get("data"), media_type=data.get("mimeType"))]
    if isinstance(part.get("fileData"), dict):
        data = part["fileData"]
        return blocks + [ir.Image(url=data.get("fileUri"), media_type=data.get("mimeType"))]
    if blocks:
        return blocks
    kinds = ", ".join(sorted(part)) or "empty part"
    raise InvalidRequest(f"{where}: unsupported part ({kinds})", param=where)


def _signature(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not value:
        return None, None
    issuer, raw = ir.unwrap_signature(value, dialect_provider=PROVIDER)
    return raw, issuer


def _parse_tools(tools: Any) -> list[ir.Tool]:
    out: list[ir.Tool] = []
    for i, tool in enumerate(tools or []):
        declarations = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        if not isinstance(declarations, list):
            kinds = ", ".join(sorted(tool)) if isinstance(tool, dict) else "?"
            raise InvalidRequest(f"tools[{i}]: only functionDeclarations are supported "
                                 f"(got {kinds})", param=f"tools[{i}]")
        for j, declaration in enumerate(declarations):
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"),
                                                                   str):
                raise InvalidRequest(f"tools[{i}].functionDeclarations[{j}] needs a name",
                                     param=f"tools[{i}].functionDeclarations[{j}]")
            schema = declaration.get("parametersJsonSchema")
            if schema is None and declaration.get("parameters") is not None:
                schema = _json_schema(declaration["parameters"])
            out.append(ir.Tool(name=declaration["name"],
                               description=declaration.get("description"), parameters=schema))
    return out


def _parse_tool_config(config: Any,
                       tools: list[ir.Tool]) -> tuple[ir.ToolChoice | None, list[ir.Tool]]:
    calling = _object(_object(config, "toolConfig").get("functionCallingConfig"),
                      "toolConfig.functionCallingConfig")
    mode = str(calling.get("mode") or "MODE_UNSPECIFIED").upper()
    if mode == "MODE_UNSPECIFIED":
        return None, tools
    if mode not in _MODES:
        raise InvalidRequest(f"Unknown function calling mode {mode!r}",
                             param="toolConfig.functionCallingConfig.mode")
    allowed = calling.get("allowedFunctionNames") or []
    if mode == "ANY" and len(allowed) == 1:
        return ir.ToolChoice(mode="tool", name=allowed[0]), tools
    if allowed:
        # The IR has no allow-list; offering only the allowed tools means the same.
        tools = [t for t in tools if t.name in allowed]
    return ir.ToolChoice(mode=_MODES[mode]), tools  # type: ignore[arg-type]


def _parse_response_format(config: dict[str, Any]) -> ir.ResponseFormat | None:
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = _json_schema(config["responseSchema"])
    if schema is None:
        return ir.ResponseFormat(type="json_object")
    return ir.ResponseFormat(type="json_schema", schema=schema)


# ---------------------------------------------------------------- IR -> upstream
@dataclass(slots=True)
class _Turn:
    """One Gemini content being assembled; tool results wait to be ordered."""

    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[ir.ToolCall] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # call id -> part


def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """The IR as a GenerateContentRequest body (the model goes in the URL).

    Tool schemas go out as `parametersJsonSchema`, unchanged: `parameters` is an
    OpenAPI subset (no additionalProperties, no type arrays, restricted $ref),
    and down-converting loses meaning; the JSON Schema field takes them as is.
    """
    del model
    system = [{"text": b.text} for m in request.messages if m.role == "system"
              for b in m.content if isinstance(b, ir.Text) and b.text]
    body: dict[str, Any] = {"contents": _render_contents(request.messages)}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_render_tool(t) for t in request.tools]}]
    if request.tool_choice is not None:
        choice = request.tool_choice
        calling: dict[str, Any] = {"mode": _MODES_TO_WIRE[choice.mode]}
        if choice.mode == "tool":
            calling["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": calling}
    config = _render_generation_config(request)
    if config:
        body["generationConfig"] = config
    return body


def _render_tool(tool: ir.Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters is not None:
        declaration["parametersJsonSchema"] = tool.parameters
    return declaration


def _render_contents(messages: list[ir.Message]) -> list[dict[str, Any]]:
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
    parts = [turn.results.pop(call.id, None) or {
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
                part = _render_image(block)
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
    args = _args_object(call.arguments)
    if args is None:
        raise InvalidRequest(f"The arguments of tool call {call.id!r} are not a JSON object; "
                             "Gemini needs one.", param="messages")
    return args


def _args_object(arguments: str) -> dict[str, Any] | None:
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        return None
    return args if isinstance(args, dict) else None


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
    images = [_render_image(b) for b in result.content if isinstance(b, ir.Image)]
    if images:
        response["parts"] = images
    return {"functionResponse": response}


def _render_image(image: ir.Image) -> dict[str, Any]:
    url = image.url or ""
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type or "image/png",
                               "data": image.data}}
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"inlineData": {"mimeType": header[5:].split(";")[0] or "image/png",
                               "data": data}}
    if url.startswith("gs://") or url.startswith(
            "https://generativelanguage.googleapis.com/"):
        file_data = {"fileUri": url}
        if image.media_type:
            file_data["mimeType"] = image.media_type
        return {"fileData": file_data}
    raise InvalidRequest("Image URLs are not supported for Gemini models yet; send the "
                         "image as base64 data.", param="messages")


def _render_generation_config(request: ir.Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for wire, value in (("maxOutputTokens", request.max_output_tokens),
                        ("temperature", request.temperature), ("topP", request.top_p),
                        ("topK", request.top_k), ("seed", request.seed)):
        if value is not None:
            config[wire] = value
    if request.stop:
        if len(request.stop) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(f"Gemini models accept at most {MAX_STOP_SEQUENCES} stop "
                                 "sequences.", param="stop")
        config["stopSequences"] = request.stop
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = fmt.schema
    budget = request.thinking_budget
    if budget is None and request.reasoning_effort is not None:
        budget = _EFFORT_BUDGETS.get(request.reasoning_effort)
        if budget is None:
            raise InvalidRequest(f"Unknown reasoning effort {request.reasoning_effort!r}",
                                 param="reasoning_effort")
    if budget is not None:
        # Thought text never reaches callers of other dialects: don't pay to send it.
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": False}
    return config


# ================================================================ responses
def parse_usage(usage: Any) -> ir.Usage:
    """`candidatesTokenCount` excludes thoughts; the IR's output includes them.
    Tool-use prompt tokens are billed as input, so they count as input here."""
    usage = usage if isinstance(usage, dict) else {}
    thoughts = int(usage.get("thoughtsTokenCount") or 0)
    return ir.Usage(
        input_tokens=int(usage.get("promptTokenCount") or 0)
        + int(usage.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(usage.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=int(usage.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def render_usage(usage: ir.Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(0, usage.output_tokens - usage.reasoning_tokens),
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_input_tokens:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def _stop_reason(reason: Any, *, has_calls: bool) -> ir.StopReason:
    if reason == "MALFORMED_FUNCTION_CALL":
        raise UpstreamError("The model produced a malformed function call "
                            "(MALFORMED_FUNCTION_CALL).")
    if reason in (None, "STOP"):
        return "tool_calls" if has_calls else "stop"  # Gemini ends calls with STOP
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in _FILTERED else "error"


def _output_call_id(response_id: str, ordinal: int, call: dict[str, Any]) -> str:
    """The call's own id, or one derived from where it sits in which answer."""
    if isinstance(call.get("id"), str) and call["id"]:
        return call["id"]
    seed = f"{response_id}\0{ordinal}\0{call.get('name')}\0{_dumps(call.get('args') or {})}"
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


def parse_response(body: Any) -> ir.Response:
    """An upstream GenerateContentResponse as IR."""
    if not isinstance(body, dict):
        raise UpstreamError("The upstream answer is not a JSON object.")
    response_id = str(body.get("responseId") or "")
    candidates = body.get("candidates") or []
    blocks: list[ir.Block] = []
    if candidates:
        candidate = candidates[0]
        ordinal = iter(range(1 << 30))
        for j, part in enumerate((candidate.get("content") or {}).get("parts") or []):
            blocks += _parse_part(part, f"candidates[0].content.parts[{j}]",
                                  lambda call: _output_call_id(response_id, next(ordinal),
                                                               call))
        has_calls = any(isinstance(b, ir.ToolCall) for b in blocks)
        stop = _stop_reason(candidate.get("finishReason"), has_calls=has_calls)
    elif (body.get("promptFeedback") or {}).get("blockReason"):
        stop = "content_filter"  # the prompt itself was blocked
    else:
        raise UpstreamError("The upstream answer has no candidates.")
    return ir.Response(id=response_id, model=str(body.get("modelVersion") or ""),
                       created=int(time.time()), content=blocks, stop_reason=stop,
                       usage=parse_usage(body.get("usageMetadata")))


def render_response(response: ir.Response) -> dict[str, Any]:
    parts = _render_output_parts(response.content)
    content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    return {
        "candidates": [{"content": content,
                        "finishReason": _STOP_TO_WIRE[response.stop_reason], "index": 0}],
        "usageMetadata": render_usage(response.usage),
        "modelVersion": response.model,
        "responseId": response.id,
    }


def _render_output_parts(blocks: list[ir.Block]) -> list[dict[str, Any]]:
    """Thought text never leaks; a Gemini thought signature rides on the next part,
    as Gemini itself sends it."""
    parts: list[dict[str, Any]] = []
    signature: str | None = None
    for block in blocks:
        if isinstance(block, ir.Thinking):
            if block.provider == PROVIDER and block.signature:
                signature = block.signature
            continue
        if isinstance(block, ir.ToolCall):
            part = render_function_call(block)
        elif isinstance(block, ir.Text | ir.Refusal):
            if not block.text:
                continue
            part = {"text": block.text}
        elif isinstance(block, ir.Image):
            part = _render_image(block)
        else:
            continue  # tool results never appear in an answer
        if signature and "thoughtSignature" not in part:
            part["thoughtSignature"], signature = signature, None
        parts.append(part)
    if signature:
        parts.append({"text": "", "thoughtSignature": signature})
    return parts


def render_function_call(call: ir.ToolCall) -> dict[str, Any]:
    """A call for a Gemini caller; another provider's signature is wrapped with its
    issuer's name so it goes back to that provider only."""
    args = _args_object(call.arguments)
    if args is None:
        raise UpstreamError(f"The model produced invalid JSON arguments for {call.name!r}.")
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args, "id": call.id}}
    if call.signature and call.provider:
        part["thoughtSignature"] = ir.wrap_signature(call.provider, call.signature,
                                                     dialect_provider=PROVIDER)
    return part


# ================================================================ streams
class StreamDecoder:
    """Upstream `data:` events (each a GenerateContentResponse of new parts, with
    running-total usage) -> IR stream events.

    Consecutive text parts extend one text block, consecutive thought parts one
    thinking block; every call and every signature opens a block of its own.
    Gemini streams have no terminator: `finish()` ends the stream if a
    finishReason was seen and reports truncation otherwise.
    """

    def __init__(self) -> None:
        self._started = False
        self._closed = False
        self._stop: ir.StopReason | None = None
        self._response_id = ""
        self._blocks = 0
        self._open: tuple[str, int] | None = None  # (kind, index) of an extendable block
        self._calls = 0
        self.last_was_usage_only = False  # Gemini has no usage-only event to drop

    def _block(self, kind: str) -> int:
        """The open block of this kind, or a new one."""
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._blocks += 1
        self._open = (kind, self._blocks - 1)
        return self._blocks - 1

    def _new_block(self) -> int:
        """A block nothing else extends (a call, a signature)."""
        self._open = None
        self._blocks += 1
        return self._blocks - 1

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._closed:
            raise UpstreamError("The upstream sent data after the stream ended.")
        try:
            chunk = json.loads(event.data)
        except ValueError:
            raise UpstreamError("The upstream sent a malformed stream event.") from None
        if not isinstance(chunk, dict):
            raise UpstreamError("The upstream sent a malformed stream event.")
        if chunk.get("error"):
            code = (chunk["error"] or {}).get("code") if isinstance(chunk["error"], dict) else 0
            raise error_from_body(chunk, status=code if isinstance(code, int) and code else 502)
        out: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            self._response_id = str(chunk.get("responseId") or "")
            out.append(ir.StreamStart(id=self._response_id,
                                      model=str(chunk.get("modelVersion") or ""),
                                      created=int(time.time())))
        candidates = chunk.get("candidates") or []
        if candidates:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or []:
                out += self._feed_part(part)
            if candidate.get("finishReason"):
                self._stop = _stop_reason(candidate["finishReason"], has_calls=self._calls > 0)
        elif (chunk.get("promptFeedback") or {}).get("blockReason"):
            self._stop = "content_filter"
        if chunk.get("usageMetadata"):
            out.append(ir.UsageUpdate(usage=parse_usage(chunk["usageMetadata"])))
        return out

    def _feed_part(self, part: Any) -> list[ir.StreamEvent]:
        if not isinstance(part, dict):
            raise UpstreamError("The upstream sent a malformed content part.")
        signature, issuer = _signature(part.get("thoughtSignature"))
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            index = self._new_block()
            self._calls += 1
            return [ir.ToolCallStart(index=index, name=str(call.get("name") or ""),
                                     id=_output_call_id(self._response_id, self._calls - 1,
                                                        call),
                                     signature=signature, provider=issuer),
                    ir.ToolCallDelta(index=index, arguments=_dumps(call.get("args") or {}))]
        text = part.get("text") if isinstance(part.get("text"), str) else ""
        if part.get("thought") is True:
            return [ir.ThinkingDelta(index=self._block("thinking"), text=text,
                                     signature=signature, provider=issuer)]
        out: list[ir.StreamEvent] = []
        if signature:
            out.append(ir.ThinkingDelta(index=self._new_block(), signature=signature,
                                        provider=issuer))
        if text:
            out.append(ir.TextDelta(index=self._block("text"), text=text))
        # Other parts (inline images, executable code) have no stream event in the
        # IR; their tokens are still metered through usageMetadata.
        return out

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream: complete only if it said why it stopped."""
        if self._closed:
            raise UpstreamError("The stream was already finished.")
        self._closed = True
        if self._stop is None:
            raise UpstreamError("The upstream stream ended before it was complete.")
        return [ir.StreamEnd(stop_reason=self._stop)]

    @property
    def done(self) -> bool:
        return self._stop is not None


class StreamEncoder:
    """IR stream events -> `data: {GenerateContentResponse}` events for the caller.

    One event per text delta, held back until the next event so that the last
    one carries the finishReason, as Gemini's own last event does. A tool call
    is buffered and sent whole (Gemini callers expect complete args) when its
    block ends; consecutive calls share one event, as Gemini sends them. Every
    event carries the usage known when it is sent, the last one the final usage.
    """

    def __init__(self, *, model: str, include_usage: bool) -> None:
        del include_usage  # Gemini always reports usage
        self._model = model
        self._id = ""
        self._usage: ir.Usage | None = None
        self._signature: str | None = None  # a Gemini thought signature for the next part
        self._pending: list[dict[str, Any]] = []  # parts of the event not sent yet
        self._call: ir.ToolCall | None = None  # the call whose arguments are streaming
        self._call_index: int | None = None
        self._finished = False

    def _part(self, part: dict[str, Any]) -> dict[str, Any]:
        if self._signature and "thoughtSignature" not in part:
            part["thoughtSignature"], self._signature = self._signature, None
        return part

    def _send(self, finish: str | None = None) -> list[ServerSentEvent]:
        parts, self._pending = self._pending, []
        if not parts and finish is None:
            return []
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if self._usage is not None:
            chunk["usageMetadata"] = render_usage(self._usage)
        chunk["modelVersion"] = self._model
        chunk["responseId"] = self._id
        return [ServerSentEvent(data=_dumps(chunk))]

    def _close_call(self) -> list[ServerSentEvent]:
        """The streaming call is complete: it joins the pending calls, if any."""
        if self._call is None:
            return []
        part = self._part(render_function_call(self._call))
        self._call = self._call_index = None
        out = [] if all("functionCall" in p for p in self._pending) else self._send()
        self._pending.append(part)
        return out

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        match event:
            case ir.StreamStart(id=response_id):
                self._id = response_id
                return []
            case ir.TextDelta(text=text) | ir.RefusalDelta(text=text):
                if not text:
                    return []
                out = self._close_call() + self._send()
                self._pending = [self._part({"text": text})]
                return out
            case ir.ThinkingDelta(signature=signature, provider=provider):
                out = self._close_call()
                if signature and provider == PROVIDER:
                    self._signature = signature
                return out  # thought text never leaks
            case ir.ToolCallStart(index=index, id=call_id, name=name, signature=signature,
                                  provider=provider):
                out = self._close_call()
                if not all("functionCall" in p for p in self._pending):
                    out += self._send()
                self._call = ir.ToolCall(id=call_id, name=name, arguments="",
                                         signature=signature, provider=provider)
                self._call_index = index
                return out
            case ir.ToolCallDelta(index=index, arguments=arguments):
                if self._call is None or index != self._call_index:
                    raise ValueError(f"arguments for tool call block {index} before its start")
                self._call.arguments += arguments
                return []
            case ir.UsageUpdate(usage=usage):
                self._usage = usage
                return []
            case ir.StreamEnd(stop_reason=reason):
                out = self._close_call()
                self._finished = True
                if not self._pending or self._signature:
                    self._pending.append(self._part({"text": ""}))
                return out + self._send(_STOP_TO_WIRE[reason])
        raise TypeError(f"unknown stream event {event!r}")


def passthrough_keep(decoder: StreamDecoder, *, include_usage: bool) -> bool:
    """Every upstream event is relayed: Gemini callers always get usage."""
    return True


def render_json_array_chunk(response: dict[str, Any], *, first: bool) -> str:
    """One element of `streamGenerateContent` without `alt=sse`: a JSON array sent
    progressively. Close it with `JSON_ARRAY_CLOSE` (or `"[]"` if nothing was sent)."""
    return ("[" if first else "\n,\r\n") + _dumps(response)


JSON_ARRAY_CLOSE = "]"


# ================================================================ errors
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def render_error(error: GatewayError) -> dict[str, Any]:
    """Google's error shape, with OUR status (401 bad key, 402 credits) in `code`,
    so google-genai raises ClientError/ServerError for the right reason."""
    body: dict[str, Any] = {"code": error.status, "message": error.message,
                            "status": _STATUS_NAMES.get(error.status, "INTERNAL")}
    details: list[dict[str, Any]] = []
    if error.code:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": error.code.upper(), "domain": "afk"})
    if error.param:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": error.param,
                                             "description": error.message}]})
    if details:
        body["details"] = details
    return {"error": body}


def render_stream_error(error: GatewayError) -> list[ServerSentEvent]:
    # google-genai raises only when `error` is the chunk's first key.
    return [ServerSentEvent(data=_dumps(render_error(error)))]


def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream Gemini error as ours. A refused key is the gateway's own
    misconfiguration (Gemini says 400 API_KEY_INVALID or 403), never the caller's."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"message": str(detail) if detail else "upstream error"}
    message = str(detail.get("message") or "upstream error")
    reasons = {d.get("reason") for d in detail.get("details") or [] if isinstance(d, dict)}
    if "API_KEY_INVALID" in reasons or status in (401, 403):
        return UpstreamError("The gateway's Gemini credentials were refused upstream.")
    if status == 429:
        return RateLimited(message)
    if status in (400, 413, 422) and detail.get("status") != "FAILED_PRECONDITION":
        return InvalidRequest(message, status=status)
    if status == 503:
        return Overloaded(message)
    if status == 504:
        return UpstreamTimeout(message)
    return UpstreamError(f"upstream error ({status}): {message}")


# ================================================================ countTokens and models
def parse_count_tokens(body: Any, *, model: str) -> ir.Request:
    """`{"contents": …}` or `{"generateContentRequest": {…}}`, as a Request."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is not None:
        if not isinstance(inner, dict):
            raise InvalidRequest("generateContentRequest must be an object",
                                 param="generateContentRequest")
        return parse_request(inner, model=model, stream=False)
    return parse_request(body, model=model, stream=False)


def render_count_tokens(total: int) -> dict[str, Any]:
    return {"totalTokens": total}


def render_model(model_id: str, display_name: str, context_window: int,
                 max_output_tokens: int) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}", "version": "001", "displayName": display_name,
        "inputTokenLimit": context_window, "outputTokenLimit": max_output_tokens,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def render_model_list(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"models": models}
