"""Chat Completions requests: the caller's body to the IR, and the IR to an
upstream body."""

from __future__ import annotations

import hashlib
from typing import Any

from afk import ir
from afk.dialects.openai_chat.messages import parse_message, render_messages
from afk.errors import InvalidRequest

__all__ = ["parse_request", "patch_request", "render_request", "requested_max_tokens",
           "strip_reasoning"]


def parse_request(body: Any, *, model: str | None = None,
                  stream: bool | None = None) -> ir.Request:
    """Validate a caller's Chat Completions body and lift it into the IR (the body
    names the model and whether to stream, so the keywords are unused)."""
    del model, stream
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    n = body.get("n")
    if n not in (None, 1):
        raise InvalidRequest("This gateway supports only n=1.", param="n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' "
                             "is enabled.", param="stream_options")
    stop = body.get("stop")
    return ir.Request(
        model=model,
        messages=[parse_message(m, i) for i, m in enumerate(messages)],
        max_output_tokens=requested_max_tokens(body),
        stream=stream,
        stream_usage=bool((stream_options or {}).get("include_usage")),
        tools=[_parse_tool(t, i) for i, t in enumerate(body.get("tools") or [])],
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        response_format=_parse_response_format(body.get("response_format")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        seed=body.get("seed"),
        reasoning_effort=body.get("reasoning_effort"),
        user=body.get("user"),
        metadata=body.get("metadata"),
        # Chat's hosted web search (`web_search_options`; its context size and
        # location hints have no counterpart elsewhere and are not carried).
        web_search=ir.WebSearch() if body.get("web_search_options") is not None else None,
    )


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    """The caller's output cap: `max_completion_tokens` and/or the legacy `max_tokens`
    (the smaller, when both are sent)."""
    values = []
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
        values.append(value)
    return min(values) if values else None


def patch_request(body: dict[str, Any], *, model: str, max_tokens: int,
                  stream_usage: bool) -> dict[str, Any]:
    """The caller's body for a same-dialect upstream: only the model, the output
    cap and the stream-usage option change; every other field is forwarded."""
    patched = dict(body)
    patched["model"] = model
    # Clamp whichever output caps the caller sent (both, if both), so no field
    # the upstream might honour can exceed the quote.
    fields = [f for f in ("max_completion_tokens", "max_tokens") if body.get(f) is not None]
    for field in fields or ["max_completion_tokens"]:
        patched[field] = max_tokens
    if patched.get("stream") and stream_usage:
        patched["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return patched


def _parse_tool(tool: Any, i: int) -> ir.Tool:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(
            function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"tools[{i}] must be a function tool with a name",
                             param=f"tools[{i}]")
    return ir.Tool(name=function["name"], description=function.get("description"),
                   parameters=function.get("parameters"), strict=function.get("strict"))


def _parse_tool_choice(choice: Any) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(mode=choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return ir.ToolChoice(mode="tool", name=name)
    raise InvalidRequest("Invalid 'tool_choice'", param="tool_choice")


def _parse_response_format(value: Any) -> ir.ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(type=kind)
    if kind == "json_schema" and isinstance(value.get("json_schema"), dict):
        spec = value["json_schema"]
        return ir.ResponseFormat(type="json_schema", name=spec.get("name"),
                                 schema=spec.get("schema"), description=spec.get("description"),
                                 strict=spec.get("strict"))
    raise InvalidRequest("Invalid 'response_format'", param="response_format")


def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """The IR as a Chat Completions body for an OpenAI(-compatible) upstream."""
    body: dict[str, Any] = {"model": model, "messages": render_messages(request.messages)}
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {
                k: v for k, v in (("name", t.name), ("description", t.description),
                                  ("parameters", t.parameters), ("strict", t.strict))
                if v is not None}}
            for t in request.tools
        ]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = ({"type": "function", "function": {"name": choice.name}}
                               if choice.mode == "tool" else choice.mode)
    if request.response_format is not None:
        fmt = request.response_format
        if fmt.type == "json_schema":
            spec = {k: v for k, v in (("name", fmt.name or "response"), ("schema", fmt.schema),
                                      ("description", fmt.description), ("strict", fmt.strict))
                    if v is not None}
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            body["response_format"] = {"type": fmt.type}
    for name in ("parallel_tool_calls", "temperature", "top_p", "seed", "reasoning_effort",
                 "metadata"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.user:
        # Other dialects' user ids can be long JSON (Claude Code's); OpenAI's end-user
        # id is short. A digest keeps one stable id per user.
        body["user"] = request.user if len(request.user) <= 64 else \
            hashlib.sha256(request.user.encode()).hexdigest()
    if request.stop:
        body["stop"] = request.stop
    if request.reasoning_effort is None and request.thinking_budget is not None:
        body["reasoning_effort"] = ir.effort_for_budget(request.thinking_budget)
    return body


def strip_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The body without reasoning settings, for a model that takes none."""
    return {k: v for k, v in body.items() if k != "reasoning_effort"}
