"""Chat Completions requests: the caller's body to the IR, and the IR to an
upstream body."""

from __future__ import annotations

import hashlib
from typing import Any

from afk import ir
from afk.errors import InvalidRequest


def parse_request(body: Any) -> ir.Request:
    """Validate a caller's Chat Completions body and lift it into the IR."""
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
        messages=[_parse_message(m, i) for i, m in enumerate(messages)],
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


def _parse_message(message: Any, i: int) -> ir.Message:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return ir.Message(role="system", content=_parse_parts(content, where, user=False))
    if role == "user":
        return ir.Message(role="user", content=_parse_parts(content, where, user=True),
                          name=message.get("name"))
    if role == "assistant":
        blocks: list[ir.Block] = []
        if content is not None:
            blocks += _parse_parts(content, where, user=False)
        if message.get("refusal"):
            blocks.append(ir.Refusal(text=message["refusal"]))
        for j, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidRequest(f"{where}.tool_calls[{j}] needs function.name",
                                     param=f"{where}.tool_calls")
            blocks.append(ir.ToolCall(id=str(call.get("id") or ""), name=function["name"],
                                      arguments=function.get("arguments") or ""))
        return ir.Message(role="assistant", content=blocks, name=message.get("name"))
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"{where}: a tool message needs 'tool_call_id'",
                                 param=f"{where}.tool_call_id")
        parts = _parse_parts(content, where, user=False)
        return ir.Message(role="tool", content=[ir.ToolResult(call_id=call_id, content=parts)])
    raise InvalidRequest(f"{where}: invalid role {role!r}; expected one of 'system', "
                         "'developer', 'user', 'assistant', 'tool'", param=f"{where}.role")


def _parse_parts(content: Any, where: str, *, user: bool) -> list[Any]:
    if isinstance(content, str):
        return [ir.Text(text=content)] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts",
                             param=f"{where}.content")
    blocks: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(ir.Text(text=part["text"]))
        elif kind == "refusal" and not user:
            blocks.append(ir.Refusal(text=part.get("refusal") or ""))
        elif kind == "image_url" and user:
            image = part.get("image_url") or {}
            blocks.append(_parse_image(image.get("url"), image.get("detail"), where))
        else:
            raise InvalidRequest(f"{where}.content: unsupported part type {kind!r}",
                                 param=f"{where}.content")
    return blocks


def _parse_image(url: Any, detail: Any, where: str) -> ir.Image:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}: image_url.url is required", param=f"{where}.content")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or None
        if ";base64" not in header or not data:
            raise InvalidRequest(f"{where}: image data URLs must be base64",
                                 param=f"{where}.content")
        return ir.Image(data=data, media_type=media_type, detail=detail)
    return ir.Image(url=url, detail=detail)


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
    body: dict[str, Any] = {"model": model, "messages": _render_messages(request.messages)}
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


def _render_messages(messages: list[ir.Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            for block in message.content:
                if isinstance(block, ir.ToolResult):
                    out.append({"role": "tool", "tool_call_id": block.call_id,
                                "content": _render_text(block.content)})
            continue
        if message.role == "assistant":
            text = "".join(b.text for b in message.content if isinstance(b, ir.Text))
            calls = [b for b in message.content if isinstance(b, ir.ToolCall)]
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                    for c in calls]
            out.append(entry)
            continue
        parts: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, ir.Text):
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, ir.Image) and block.data and block.media_type and \
                    not block.media_type.startswith("image/"):
                parts.append({"type": "file", "file": {
                    "file_data": f"data:{block.media_type};base64,{block.data}",
                    "filename": "document" + _extension(block.media_type)}})
            elif isinstance(block, ir.Image):
                url = block.url or f"data:{block.media_type};base64,{block.data}"
                image = {"url": url, **({"detail": block.detail} if block.detail else {})}
                parts.append({"type": "image_url", "image_url": image})
        entry = {"role": message.role,
                 "content": "".join(p["text"] for p in parts)
                 if all(p["type"] == "text" for p in parts) else parts}
        if message.name:
            entry["name"] = message.name
        out.append(entry)
    return out


def _extension(media_type: str) -> str:
    return {"application/pdf": ".pdf", "text/plain": ".txt"}.get(media_type, "")


def _render_text(blocks: list[Any]) -> str:
    return "".join(b.text for b in blocks if isinstance(b, ir.Text))


def strip_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The body without reasoning settings, for a model that takes none."""
    return {k: v for k, v in body.items() if k != "reasoning_effort"}
