"""Request bodies: the caller's body -> IR (`parse_request`, `check_translatable`),
the passthrough patch, IR -> an OpenAI upstream body (`render_request`), and the
request fields a response echoes (`echo_fields`).

Tools. Function tools map one to one. Freeform (`type:"custom"`) tools with
unconstrained text input keep their meaning as a function tool taking one
string parameter `input`; a grammar-constrained one does not (no other
provider enforces a grammar), so it is OpenAI-only. Namespaced tools are
flattened to "<namespace>__<name>". Built-in tools (web_search, file_search,
code_interpreter, image_generation, shell, mcp, computer use, apply_patch,
tool_search, ...) are OpenAI-only: left out of the IR, noted, and refused by
`check_translatable`. `render_response` / the encoder undo the custom and
namespace mappings with the request's tools (`echo["tools"]`).

Pipeline and transport fields (`previous_response_id`, `store`, `include`,
`conversation`, `background`, `truncation`, `prompt_cache_key`,
`service_tier`, `stream_options`, `reasoning.summary`, `text.verbosity`) are
not the IR's concern and are neither modelled nor refused.
"""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.openai_responses import search
from afk.dialects.openai_responses.messages import parse_item_list, render_items
from afk.dialects.openai_responses.wire import PROVIDER, Skipped, flat_name
from afk.errors import InvalidRequest

__all__ = ["check_translatable", "echo_fields", "parse_request", "patch_request", "render_request",
           "strip_reasoning"]

CUSTOM_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"],
    "additionalProperties": False,
}
_ECHOED = ("instructions", "tools", "tool_choice", "parallel_tool_calls", "previous_response_id",
           "store", "metadata", "max_output_tokens", "reasoning", "text", "temperature", "top_p",
           "user", "truncation", "safety_identifier", "prompt_cache_key", "service_tier")


# ================================================================ caller -> IR
def parse_request(body: Any, *, model: str | None = None,
                  stream: bool | None = None) -> ir.Request:
    """Validate a caller's Responses body and lift it into the IR. Content the IR
    cannot carry is left out, not refused (see the module docstring); run
    `check_translatable(body)` before serving it from another provider."""
    return _parse(body, [])


def check_translatable(body: Any) -> None:
    """Raise one 400 naming every feature of `body` only OpenAI can run."""
    skipped: Skipped = []
    _parse(body, skipped)
    if skipped:
        raise InvalidRequest(f"{', '.join(skipped)}: only OpenAI models can serve this, and "
                             "this model is served by another provider.",
                             param=skipped[0].split(" ", 1)[0])


def _parse(body: Any, skipped: Skipped) -> ir.Request:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean.", param="stream")
    tools = _parse_tools(body.get("tools"), skipped)
    choice = _parse_tool_choice(body.get("tool_choice"), skipped, tools)
    reasoning = _object(body, "reasoning")
    metadata = body.get("metadata")
    return ir.Request(
        model=model,
        messages=_instructions(body.get("instructions")) + _input(body.get("input"), skipped),
        max_output_tokens=_max_output_tokens(body.get("max_output_tokens")),
        stream=stream,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=_optional(body, "parallel_tool_calls", bool),
        response_format=_parse_format(_object(body, "text").get("format")),
        temperature=_optional(body, "temperature", int | float),
        top_p=_optional(body, "top_p", int | float),
        reasoning_effort=reasoning.get("effort"),
        user=body.get("safety_identifier") or body.get("user"),
        metadata=metadata if isinstance(metadata, dict) and metadata else None,
        web_search=next((search.parse_tool(t, body.get("max_tool_calls"))
                         for t in body.get("tools") or [] if search.is_search_tool(t)), None),
    )


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid type for '{name}': expected an object.", param=name)
    return value


def _optional(body: dict[str, Any], name: str, kind: Any) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or
                              (isinstance(value, bool) and kind is not bool)):
        raise InvalidRequest(f"Invalid type for '{name}'.", param=name)
    return value


def _max_output_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("Invalid 'max_output_tokens': must be a positive integer.",
                             param="max_output_tokens")
    return value


def _instructions(value: Any) -> list[ir.Message]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise InvalidRequest("Invalid type for 'instructions': expected a string.",
                             param="instructions")
    return [ir.Message(role="system", content=[ir.Text(text=value)])]


def _input(value: Any, skipped: Skipped) -> list[ir.Message]:
    if value is None:
        return []  # a continuation (previous_response_id / conversation) may send none
    if isinstance(value, str):
        return [ir.Message(role="user", content=[ir.Text(text=value)] if value else [])]
    if not isinstance(value, list):
        raise InvalidRequest("Invalid type for 'input': expected a string or an array of "
                             "input items.", param="input")
    return parse_item_list(value, skipped, "input")


def _parse_tools(value: Any, skipped: Skipped) -> list[ir.Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("Invalid type for 'tools': expected an array.", param="tools")
    tools: list[ir.Tool] = []
    for i, tool in enumerate(value):
        if not search.is_search_tool(tool):
            tools += _parse_tool(tool, f"tools[{i}]", None, skipped)
    return tools


def _parse_tool(tool: Any, at: str, namespace: str | None, skipped: Skipped) -> list[ir.Tool]:
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise InvalidRequest(f"{at} must be an object with a 'type'", param=at)
    kind, name = tool["type"], tool.get("name")
    if kind in ("function", "custom", "namespace") and (not isinstance(name, str) or not name):
        raise InvalidRequest(f"Missing required parameter: '{at}.name'.", param=f"{at}.name")
    name = str(name)  # a non-empty string for the kinds that use it
    if kind == "function":
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequest(f"Invalid type for '{at}.parameters': expected an object.",
                                 param=f"{at}.parameters")
        return [ir.Tool(name=flat_name(name, namespace), description=tool.get("description"),
                        parameters=parameters, strict=tool.get("strict"))]
    if kind == "custom":
        fmt = tool.get("format") or {"type": "text"}
        if not isinstance(fmt, dict) or fmt.get("type") != "text":
            skipped.append(f"{at} (custom tool with a grammar format)")
            return []
        return [ir.Tool(name=flat_name(name, namespace), description=tool.get("description"),
                        parameters=CUSTOM_INPUT_SCHEMA)]
    if kind == "namespace" and namespace is None:
        inner = tool.get("tools")
        if not isinstance(inner, list):
            raise InvalidRequest(f"Missing required parameter: '{at}.tools'.",
                                 param=f"{at}.tools")
        return [t for j, entry in enumerate(inner)
                for t in _parse_tool(entry, f"{at}.tools[{j}]", name, skipped)]
    skipped.append(f"{at} (built-in tool {kind!r})")
    return []


def _parse_tool_choice(choice: Any, skipped: Skipped, tools: list[ir.Tool]
                       ) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(mode=choice)
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        return ir.ToolChoice(mode="tool", name=flat_name(choice["name"], choice.get("namespace")))
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required") and isinstance(
            choice.get("tools"), list):
        # The closest the IR has: keep only the allowed tools (same effect on what
        # the model may call), with the mode; one required tool is a forced tool.
        allowed = {flat_name(t["name"], t.get("namespace")) for t in choice["tools"]
                   if isinstance(t, dict) and isinstance(t.get("name"), str)}
        tools[:] = [t for t in tools if t.name in allowed]
        if choice["mode"] == "required" and len(tools) == 1:
            return ir.ToolChoice(mode="tool", name=tools[0].name)
        return ir.ToolChoice(mode=choice["mode"])
    if isinstance(kind, str) and kind != "allowed_tools":
        skipped.append(f"tool_choice (built-in tool {kind!r})")
        return None
    raise InvalidRequest("Invalid value for 'tool_choice'.", param="tool_choice")


def _parse_format(value: Any) -> ir.ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(type=kind)
    if kind == "json_schema" and isinstance(value.get("schema"), dict):
        return ir.ResponseFormat(type="json_schema", name=value.get("name"),
                                 schema=value["schema"], description=value.get("description"),
                                 strict=value.get("strict"))
    raise InvalidRequest("Invalid value for 'text.format'.", param="text.format")


# ================================================================ passthrough
def patch_request(body: dict[str, Any], *, model: str, max_tokens: int,
                  stream_usage: bool) -> dict[str, Any]:
    """The caller's body for an OpenAI Responses upstream: only the model and
    `max_output_tokens` change (Responses streams always report usage), and web
    search gets a `max_tool_calls` where the caller set none."""
    return search.limit_calls({**body, "model": model, "max_output_tokens": max_tokens},
                              ir.DEFAULT_MAX_SEARCHES)


def echo_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The request fields a response object repeats (the caller's own values).
    The pipeline may add `id` to fix the response id it stores the turn under."""
    return {name: body[name] for name in _ECHOED if body.get(name) is not None}


# ================================================================ IR -> upstream
def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """The IR as a Responses body for an OpenAI upstream.

    The gateway keeps conversation state itself: `store:false` with
    `include:["reasoning.encrypted_content"]`, and the whole history as input
    items (system messages in place as developer messages, no `instructions`).
    Only OpenAI's own reasoning state is sent; other providers' thinking and
    per-call signatures are dropped. Item ids are omitted except on reasoning
    items (which need them): the upstream stores nothing and would not know ours.
    """
    messages = [_upstream_message(m) for m in request.messages]
    items = [{k: v for k, v in item.items() if k != "id" or item["type"] == "reasoning"}
             for item in render_items(messages)]
    body: dict[str, Any] = {"model": model, "input": _answer_orphans(items), "store": False,
                            "include": ["reasoning.encrypted_content"]}
    if request.stream:
        body["stream"] = True
    if request.max_output_tokens is not None:
        body["max_output_tokens"] = request.max_output_tokens
    if request.tools:
        body["tools"] = [{"type": "function", "name": t.name,
                          **({"description": t.description} if t.description else {}),
                          "parameters": t.parameters or {"type": "object", "properties": {}},
                          "strict": t.strict if t.strict is not None else False}
                         for t in request.tools]
    if request.web_search is not None:
        body["tools"] = [*body.get("tools", []), search.render_tool(request.web_search)]
        if request.web_search.max_uses is not None:
            body["max_tool_calls"] = request.web_search.max_uses
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = ({"type": "function", "name": choice.name}
                               if choice.mode == "tool" else choice.mode)
    if request.response_format is not None and request.response_format.type != "text":
        fmt = request.response_format
        body["text"] = {"format": {"type": "json_object"} if fmt.type == "json_object" else {
            "type": "json_schema", "name": fmt.name or "response",
            "schema": fmt.schema or {"type": "object"},
            **({"description": fmt.description} if fmt.description else {}),
            **({"strict": fmt.strict} if fmt.strict is not None else {})}}
    effort = request.reasoning_effort or (
        ir.effort_for_budget(request.thinking_budget)
        if request.thinking_budget is not None else None)
    if effort:
        body["reasoning"] = {"effort": effort}
    for name in ("temperature", "top_p", "parallel_tool_calls", "metadata"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.user:
        body["safety_identifier"] = request.user[:64]
    return body


def _upstream_message(message: ir.Message) -> ir.Message:
    if message.role != "assistant":
        return message
    content: list[ir.Block] = []
    for block in message.content:
        if isinstance(block, ir.Thinking):
            if block.provider == PROVIDER and block.signature:
                content.append(block)
        elif isinstance(block, ir.ToolCall) and block.provider != PROVIDER:
            content.append(ir.ToolCall(id=block.id, name=block.name, arguments=block.arguments))
        else:
            content.append(block)
    return ir.Message(role="assistant", content=content, name=message.name)


def _answer_orphans(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI 400s on a function_call without a function_call_output: answer
    each orphan with an error output right after its assistant turn."""
    answered = {i["call_id"] for i in items if i["type"] == "function_call_output"}
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for item in items:
        if item["type"] == "function_call" and item["call_id"] not in answered:
            pending.append(item["call_id"])
        elif pending and item["type"] not in ("function_call", "reasoning") and not (
                item["type"] == "message" and item["role"] == "assistant"):
            out += [_orphan_output(c) for c in pending]
            pending = []
        out.append(item)
    return out + [_orphan_output(c) for c in pending]


def _orphan_output(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id,
            "output": "No result was provided for this tool call."}


def strip_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The body without reasoning settings, for a model that takes none."""
    stripped = {k: v for k, v in body.items() if k != "reasoning"}
    if isinstance(body.get("include"), list):
        stripped["include"] = [i for i in body["include"] if i != "reasoning.encrypted_content"]
    return stripped
